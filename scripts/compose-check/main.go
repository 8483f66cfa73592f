// Command compose-check loads compose files as `docker compose -f FILE config`
// does, through compose-go (schema validation, interpolation from the
// environment, normalization, consistency checks), and prints nothing of the
// model. Exit 0 when the files load, 1 when they do not, 2 on bad usage.
//
// Built and run by scripts/check-compose.sh.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-check COMPOSE_FILE [OVERRIDE_FILE...]")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(os.Args[1:],
		cli.WithOsEnv,
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d services: %v\n", len(project.Services), project.ServiceNames())
}
