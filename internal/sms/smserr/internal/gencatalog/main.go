// Command gencatalog writes smserr/catalog_gen.go from the spec's §5.1 table
// (kept verbatim in smserr/testdata/spec-5.1.md). Run `go generate ./smserr`.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/smsflow/smsflow/internal/sms/smserr/internal/catalogsrc"
)

func main() {
	in := flag.String("in", "testdata/spec-5.1.md", "the §5.1 table")
	out := flag.String("out", "catalog_gen.go", "the Go file to write")
	flag.Parse()
	md, err := os.ReadFile(*in)
	if err != nil {
		log.Fatal(err)
	}
	rows, err := catalogsrc.Parse(md)
	if err != nil {
		log.Fatalf("%s: %v", *in, err)
	}
	src, err := catalogsrc.Render(rows)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}
