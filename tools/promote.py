"""Promote an image by digest into a stack's config: from the build to dev, or from one stack to the next.

    python -m tools.promote --image ghcr.io/org/webapp:sha-860c190@sha256:<digest> --to dev
    python -m tools.promote --from dev --to staging
    python -m tools.promote --from staging --to prod

`--image` takes what the build job pushed (docker/metadata-action's tag and
docker/build-push-action's digest). `--from` takes the image the source stack
runs, read from its `image` stack output, and only if its latest update
succeeded: staging and prod run exactly what the previous stage ran and
passed with, never a rebuild and never a bare tag. Either way the script
writes `image.repository`, `image.tag` and `image.digest` into the target
stack's config with `pulumi config set` (that is, into Pulumi.<stack>.yaml,
which the deploy workflow commits so the repository records what runs where),
and prints the reference. It runs the `pulumi` on PATH in the current
directory, logged in to the stacks' backend; a refusal exits 1 naming why.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webapp_platform.config.app_config import PROJECT
from webapp_platform.config.rules import DIGEST, unpinned_tag_problem

Pulumi = Callable[[Sequence[str]], str]
"""Runs `pulumi` with these arguments and returns its stdout; raises PromotionError when it fails."""

_REFERENCE = re.compile(r"^(?P<repository>[^@\s]+):(?P<tag>[^:/@\s]+)@(?P<digest>[^@\s]+)$")


class PromotionError(Exception):
    """The promotion was refused; the message says why and what would make it possible."""


@dataclass(frozen=True)
class Image:
    """An image reference pinned by digest: repository, tag and digest."""

    repository: str
    tag: str
    digest: str

    @classmethod
    def parse(cls, reference: str, where: str) -> Image:
        """Split `repository:tag@sha256:...`; refuse anything not pinned by a digest, naming `where` it came from."""
        match = _REFERENCE.match(reference)
        if match is None:
            raise PromotionError(
                f"{where} is {reference!r}, not an image pinned by digest (repository:tag@sha256:...); "
                "only a digest can be promoted"
            )
        image = cls(match["repository"], match["tag"], match["digest"])
        problem = unpinned_tag_problem(image.tag)
        if problem:
            raise PromotionError(f"{where}: {problem}")
        if not DIGEST.match(image.digest):
            raise PromotionError(f"{where}: {image.digest!r} is not a digest of the form sha256:<64 hex digits>")
        return image

    @property
    def reference(self) -> str:
        """`repository:tag@digest`, as the pod spec and the stack output carry it."""
        return f"{self.repository}:{self.tag}@{self.digest}"


def deployed_image(pulumi: Pulumi, stack: str) -> Image:
    """The image `stack` runs, if its latest update succeeded: the only thing the next stage may run."""
    history = json.loads(pulumi(["stack", "history", "--stack", stack, "--output", "json", "--page-size", "1"]) or "[]")
    if not history:
        raise PromotionError(f"stack {stack} has never been deployed; deploy it before promoting from it")
    latest = history[0]
    if latest.get("kind") != "update" or latest.get("result") != "succeeded":
        raise PromotionError(
            f"stack {stack}'s latest operation is {latest.get('kind')!r} with result {latest.get('result')!r}; "
            "promote only from a stack whose latest update succeeded"
        )
    outputs = json.loads(pulumi(["stack", "output", "--stack", stack, "--json"]) or "{}")
    if "image" not in outputs:
        raise PromotionError(f"stack {stack} exports no `image` output; deploy it with this program first")
    return Image.parse(str(outputs["image"]), f"the image stack {stack} runs")


def promote(pulumi: Pulumi, image: Image, target: str) -> None:
    """Write `image` into `target`'s config (Pulumi.<target>.yaml)."""
    for field, value in (("repository", image.repository), ("tag", image.tag), ("digest", image.digest)):
        pulumi(["config", "set", "--stack", target, "--path", f"{PROJECT}:image.{field}", value])


def run_pulumi(args: Sequence[str]) -> str:
    """The `pulumi` on PATH, in the current directory; its stdout, or PromotionError with its stderr."""
    result = subprocess.run(["pulumi", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PromotionError(f"`pulumi {' '.join(args)}` failed: {result.stderr.strip()[-2000:]}")
    return result.stdout


def main(argv: Sequence[str] | None = None, pulumi: Pulumi = run_pulumi) -> int:
    """Parse the command line, promote, print the reference (and hand it to a GitHub Actions step output)."""
    parser = argparse.ArgumentParser(prog="python -m tools.promote", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", help="what the build pushed: repository:tag@sha256:...")
    source.add_argument("--from", dest="source", metavar="STACK", help="the stack whose running image to promote")
    parser.add_argument("--to", dest="target", metavar="STACK", required=True, help="the stack to write it into")
    args = parser.parse_args(argv)
    try:
        if args.source is not None and args.source == args.target:
            raise PromotionError(f"--from and --to are both {args.target}")
        image = Image.parse(args.image, "--image") if args.image else deployed_image(pulumi, args.source)
        promote(pulumi, image, args.target)
    except PromotionError as error:
        print(f"promotion to {args.target} refused: {error}", file=sys.stderr)
        return 1
    origin = "the build" if args.image else f"stack {args.source}"
    print(f"{args.target} now runs {image.reference} (from {origin})")
    github_output = os.environ.get("GITHUB_OUTPUT")
    if github_output:
        with open(github_output, "a", encoding="utf-8") as out:
            out.write(f"image={image.reference}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
