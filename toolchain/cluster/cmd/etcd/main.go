// Command etcd is etcd's own server entry point (etcd's root module is a
// thin main around etcdmain), built against the etcd release this module pins.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
