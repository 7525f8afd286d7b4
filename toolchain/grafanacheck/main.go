// grafanacheck holds dashboards to Grafana's own dashboard schema, as the Grafana Foundation SDK (Apache-2.0,
// generated from Grafana's schemas) decodes it strictly: unknown fields, missing required fields and wrong types
// are errors, and so is what the schema's constraints refuse. Panel options and queries are checked by their
// plugin's schema (timeseries, prometheus...).
//
//	grafanacheck DASHBOARD.json...
//
// It prints one JSON object, {"errors": [...]}, and exits 1 when there are errors.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// failed tells a real error from the SDK's empty one: its strict decoder returns its error list as an error even
// when the list is empty (a non-nil interface holding a nil cog.BuildErrors).
func failed(err error) bool {
	if list, ok := err.(cog.BuildErrors); ok {
		return len(list) > 0
	}
	return err != nil
}

func main() {
	plugins.RegisterDefaultPlugins()
	errs := []string{}
	for _, file := range os.Args[1:] {
		raw, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		var model dashboard.Dashboard
		if err := model.UnmarshalJSONStrict(raw); failed(err) {
			errs = append(errs, fmt.Sprintf("%s: %v", file, err))
			continue
		}
		if err := model.Validate(); failed(err) {
			errs = append(errs, fmt.Sprintf("%s: %v", file, err))
		}
	}
	out, _ := json.Marshal(map[string][]string{"errors": errs})
	fmt.Println(string(out))
	if len(errs) > 0 {
		os.Exit(1)
	}
}
