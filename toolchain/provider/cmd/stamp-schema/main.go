// Command stamp-schema does what the provider's generate.go does: it reads the
// module's schema.json, sets the release version in it, and writes the compact
// schema-embed.json and terraform-mapping-embed.json that the provider's main
// package embeds.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)

func main() {
	version := flag.String("version", "", "provider version to stamp into the schema, e.g. 4.24.0")
	src := flag.String("src", "", "the provider module's cmd/pulumi-resource-kubernetes directory")
	out := flag.String("out", "", "directory to write the embedded files into")
	flag.Parse()
	if *version == "" || *src == "" || *out == "" {
		log.Fatal("usage: stamp-schema -version X -src DIR -out DIR")
	}

	var spec schema.PackageSpec
	readJSON(filepath.Join(*src, "schema.json"), &spec)
	spec.Version = *version
	writeJSON(filepath.Join(*out, "schema-embed.json"), spec)

	var mapping interface{}
	readJSON(filepath.Join(*src, "terraform-mapping.json"), &mapping)
	writeJSON(filepath.Join(*out, "terraform-mapping-embed.json"), mapping)
}

func readJSON(path string, into interface{}) {
	contents, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := json.Unmarshal(contents, into); err != nil {
		log.Fatalf("cannot parse %s: %v", path, err)
	}
}

func writeJSON(path string, value interface{}) {
	contents, err := json.Marshal(value)
	if err != nil {
		log.Fatalf("cannot serialise %s: %v", path, err)
	}
	if err := os.WriteFile(path, contents, 0o600); err != nil {
		log.Fatal(err)
	}
}
