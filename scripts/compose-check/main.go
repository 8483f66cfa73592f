// Command compose-check loads compose files as `docker compose -f FILE config`
// does, through compose-go (schema validation, interpolation from the
// environment and the project's .env, normalization, consistency checks),
// then checks what roomkey's deployment relies on. With -select, it also picks
// those services as `docker compose up SERVICE...` does. Exit 0 when the files
// load and hold, 1 when they do not, 2 on bad usage.
//
//	compose-check [-select mongo,redis] COMPOSE_FILE [OVERRIDE_FILE...]
//
// Built and run by scripts/check-compose.sh.
package main

import (
	"context"
	"flag"
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
	// The local path uses them from the host (scripts/services.ts looks there), on loopback only.
	publishes := func(service types.ServiceConfig, port uint32) bool {
		return slices.ContainsFunc(service.Ports, func(p types.ServicePortConfig) bool {
			return p.HostIP == "127.0.0.1" && p.Published == fmt.Sprint(port) && p.Target == port
		})
	}
	if mongo, ok := project.Services["mongo"]; ok {
		need(strings.HasPrefix(mongo.Image, "mongo:7"), "mongo must run mongo:7, not %q", mongo.Image)
		need(publishes(mongo, 27017), "mongo must publish 127.0.0.1:27017:27017")
	}
	if redis, ok := project.Services["redis"]; ok {
		need(strings.HasPrefix(redis.Image, "redis:7"), "redis must run redis:7, not %q", redis.Image)
		need(publishes(redis, 6379), "redis must publish 127.0.0.1:6379:6379")
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
			for _, key := range []string{"ROOMKEY_ADMIN_KEY", "ROOMKEY_MASTER_KEY"} {
				_, passed := service.Environment[key]
				need(passed, "service %q must be given %s from the host environment or .env", name, key)
			}
		}
	}
	return out
}

func main() {
	selected := flag.String("select", "", "services to pick, comma-separated, as `docker compose up SERVICE...` does")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-select mongo,redis] COMPOSE_FILE [OVERRIDE_FILE...]")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(flag.Args(),
		cli.WithOsEnv,
		// The project's .env, as docker compose reads it (COMPOSE_DISABLE_ENV_FILE=1 skips it).
		cli.WithEnvFiles(),
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
	if *selected != "" {
		project, err = project.WithSelectedServices(strings.Split(*selected, ","))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	fmt.Printf("%d services: %v\n", len(project.Services), project.ServiceNames())
}
