// Command compose-check loads compose files as `docker compose -f FILE config`
// does, through compose-go (schema validation, interpolation from the
// environment, normalization, consistency checks), then checks what roomkey's
// deployment relies on. Exit 0 when the files load and hold, 1 when they do
// not, 2 on bad usage.
//
// Built and run by scripts/check-compose.sh.
package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// problems lists what roomkey's services need and the project lacks.
func problems(project *types.Project) []string {
	var out []string
	need := func(ok bool, format string, args ...any) {
		if !ok {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	for _, name := range []string{"mongo", "redis", "api", "worker"} {
		service, found := project.Services[name]
		need(found, "service %q is missing", name)
		if found {
			need(service.HealthCheck != nil && len(service.HealthCheck.Test) > 0, "service %q has no health check", name)
		}
	}
	if mongo, ok := project.Services["mongo"]; ok {
		need(strings.HasPrefix(mongo.Image, "mongo:7"), "mongo must run mongo:7, not %q", mongo.Image)
	}
	if redis, ok := project.Services["redis"]; ok {
		need(strings.HasPrefix(redis.Image, "redis:7"), "redis must run redis:7, not %q", redis.Image)
		command := strings.Join(redis.Command, " ")
		for _, flag := range []string{"--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"} {
			need(strings.Contains(command, flag), "redis must run with %s", flag)
		}
	}
	for _, name := range []string{"api", "worker"} {
		if service, ok := project.Services[name]; ok {
			need(service.Build != nil, "service %q must be built from the Dockerfile", name)
			need(slices.Contains(service.Command, map[string]string{"api": "api", "worker": "worker"}[name]),
				"service %q must run the %s role", name, name)
		}
	}
	return out
}

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
	if found := problems(project); len(found) > 0 {
		fmt.Fprintln(os.Stderr, strings.Join(found, "\n"))
		os.Exit(1)
	}
	fmt.Printf("%d services: %v\n", len(project.Services), project.ServiceNames())
}
