// Command pulumi-resource-kubernetes serves the upstream Kubernetes provider.
//
// Upstream's own main package embeds files that its `go generate` step writes
// and that the published module does not contain, so it cannot be built from
// the module as it is. This is the same few lines; stamp-schema writes the two
// embedded files from the module's schema.json and terraform-mapping.json.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

const providerName = "kubernetes"

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve(providerName, version.Version, pulumiSchema, terraformMapping)
}
