// Command configdoc prints the README's configuration table from config.Fields:
// go run ./internal/tools/configdoc
package main

import (
	"fmt"

	"github.com/smsflow/smsflow/config"
)

func main() {
	fmt.Println("| flag | environment | YAML key | default | meaning |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for _, f := range config.Fields() {
		d := f.Default
		if d == "" {
			d = "(empty)"
		}
		fmt.Printf("| `--%s` | `%s` | `%s` | `%s` | %s |\n", f.Flag, f.Env, f.YAML, d, f.Help)
	}
}
