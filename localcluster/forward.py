"""A TCP forwarder from a host loopback port into the local cluster's network namespace.

    python -m localcluster.forward --listen 127.0.0.1:8080 --netns webapp-local --to 10.250.0.1:8000

The listening socket is opened on the host first; then the process enters the namespace, so every connection it
makes to `--to` is made there. Only that one port crosses over: no address of the namespace is routed or assigned
on the host. Each accepted connection is copied both ways by two threads until both sides have closed; at most
`MAX_CONNECTIONS` run at once (more are closed at once), and a target that does not answer within
`CONNECT_TIMEOUT_SECONDS` closes the client's connection.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import threading

from localcluster.namespaces import enter_netns

MAX_CONNECTIONS = 512
CONNECT_TIMEOUT_SECONDS = 5.0
CHUNK_BYTES = 65536


def parse_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` as a (host, port) pair; a clear error for anything else."""
    host, separator, port = text.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT with a port in 1-65535, got {text!r}")
    return host, int(port)


def _pump(source: socket.socket, destination: socket.socket) -> None:
    """Copy `source` to `destination` until `source` ends; then end `destination`'s writing side."""
    try:
        while chunk := source.recv(CHUNK_BYTES):
            destination.sendall(chunk)
    except OSError:
        # One side broke: stop both directions.
        for side in (source, destination):
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
        return
    with contextlib.suppress(OSError):
        destination.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, target: tuple[str, int], slots: threading.BoundedSemaphore) -> None:
    """One client connection, relayed to `target` until both directions are done."""
    try:
        with client:
            try:
                upstream = socket.create_connection(target, timeout=CONNECT_TIMEOUT_SECONDS)
            except OSError:
                return
            with upstream:
                upstream.settimeout(None)
                back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
                back.start()
                _pump(client, upstream)
                back.join()
    finally:
        slots.release()


def serve(listener: socket.socket, target: tuple[str, int], max_connections: int = MAX_CONNECTIONS) -> None:
    """Accept on `listener` forever, relaying each connection to `target`."""
    slots = threading.BoundedSemaphore(max_connections)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            continue
        if not slots.acquire(blocking=False):
            client.close()
            continue
        threading.Thread(target=_relay, args=(client, target, slots), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, listen on the host, enter the namespace, relay."""
    parser = argparse.ArgumentParser(prog="python -m localcluster.forward", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=parse_address, required=True, help="HOST:PORT on the host, loopback")
    parser.add_argument("--to", type=parse_address, required=True, help="HOST:PORT inside the namespace")
    parser.add_argument("--netns", default="", help="the network namespace the target is in (none: this one)")
    args = parser.parse_args(argv)
    try:
        listener = socket.create_server(args.listen, backlog=128)
    except OSError as error:
        print(f"forward: cannot listen on {args.listen[0]}:{args.listen[1]}: {error.strerror}", file=sys.stderr)
        return 1
    if args.netns:
        enter_netns(args.netns)
    serve(listener, args.to)
    return 0


if __name__ == "__main__":
    sys.exit(main())
