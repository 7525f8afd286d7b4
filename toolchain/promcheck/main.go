// promcheck checks Prometheus rule files and PromQL expressions with Prometheus's own parser (the one
// `promtool check rules` and the Prometheus server use), and names the metrics each expression reads, so the
// tests can hold the alerts and the dashboard to the metrics the app really exports.
//
//	promcheck rules FILE...   rule files (groups:...); every group and rule as Prometheus loads it
//	promcheck exprs           a JSON array of PromQL expressions on stdin (a dashboard's queries)
//
// It prints one JSON object: {"errors": [...], "metrics": [...]}, and exits 1 when there are errors.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

type report struct {
	Errors  []string `json:"errors"`
	Metrics []string `json:"metrics"`
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: promcheck rules FILE... | promcheck exprs < expressions.json")
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	r := report{Errors: []string{}}
	names := map[string]bool{}
	var exprs []string
	switch os.Args[1] {
	case "rules":
		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		for _, file := range os.Args[2:] {
			groups, errs := rulefmt.ParseFile(file, false, model.UTF8Validation, p, logger)
			for _, err := range errs {
				r.Errors = append(r.Errors, err.Error())
			}
			if len(errs) > 0 {
				continue
			}
			for _, group := range groups.Groups {
				for _, rule := range group.Rules {
					exprs = append(exprs, rule.Expr)
				}
			}
		}
	case "exprs":
		if err := json.NewDecoder(os.Stdin).Decode(&exprs); err != nil {
			r.Errors = append(r.Errors, "stdin is not a JSON array of strings: "+err.Error())
		}
	default:
		fmt.Fprintf(os.Stderr, "promcheck: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	for _, expr := range exprs {
		parsed, err := p.ParseExpr(expr)
		if err != nil {
			r.Errors = append(r.Errors, fmt.Sprintf("%q: %v", expr, err))
			continue
		}
		parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
			if selector, ok := node.(*parser.VectorSelector); ok && selector.Name != "" {
				names[selector.Name] = true
			}
			return nil
		})
	}
	r.Metrics = make([]string, 0, len(names))
	for name := range names {
		r.Metrics = append(r.Metrics, name)
	}
	sort.Strings(r.Metrics)
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if len(r.Errors) > 0 {
		os.Exit(1)
	}
}
