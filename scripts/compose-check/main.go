// Command compose-check loads compose files as `docker compose -f FILE config`
// does, through compose-go (schema validation, interpolation from the
// environment and the project's .env, normalization, consistency checks),
// then checks what roomkey's deployment relies on. With -profile, it loads the
// file as `docker compose --profile NAME` does and checks that profile too; with
// -select, it also picks those services as `docker compose up SERVICE...` does.
// Exit 0 when the files load and hold, 1 when they do not, 2 on bad usage.
//
//	compose-check [-profile replica-set] [-select mongo,redis] COMPOSE_FILE [OVERRIDE_FILE...]
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

// replicaSetServices belong to the replica-set profile: none may start without it.
var replicaSetServices = []string{"mongo-rs-1", "mongo-rs-2", "mongo-rs-3", "mongo-rs-init", "api-rs", "worker-rs"}

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
	if slices.Contains(project.Profiles, "replica-set") {
		out = append(out, replicaSetProblems(project)...)
	} else {
		// The plain `docker compose up` must not start any of them.
		for _, name := range replicaSetServices {
			_, started := project.Services[name]
			need(!started, "service %q must belong to the replica-set profile", name)
		}
	}
	return out
}

// replicaSetProblems lists what the replica-set profile lacks: three mongo:7 members of rs0, the
// one-shot initiation, and an api and a worker on the set, waiting for the initiation.
func replicaSetProblems(project *types.Project) []string {
	var out []string
	need := func(ok bool, format string, args ...any) {
		if !ok {
			out = append(out, fmt.Sprintf(format, args...))
		}
	}
	for _, name := range replicaSetServices {
		service, found := project.Services[name]
		need(found, "service %q is missing from the replica-set profile", name)
		if found {
			need(slices.Contains(service.Profiles, "replica-set"), "service %q must belong to the replica-set profile", name)
		}
	}
	for _, name := range []string{"mongo-rs-1", "mongo-rs-2", "mongo-rs-3"} {
		if member, ok := project.Services[name]; ok {
			need(strings.HasPrefix(member.Image, "mongo:7"), "%s must run mongo:7, not %q", name, member.Image)
			need(strings.Contains(strings.Join(member.Command, " "), "--replSet rs0"), "%s must run mongod --replSet rs0", name)
			need(member.HealthCheck != nil && len(member.HealthCheck.Test) > 0, "service %q has no health check", name)
		}
	}
	if init, ok := project.Services["mongo-rs-init"]; ok {
		script := strings.Join(init.Command, " ")
		need(strings.Contains(script, "rs.initiate("), "mongo-rs-init must run rs.initiate")
		for _, member := range []string{"mongo-rs-1", "mongo-rs-2", "mongo-rs-3"} {
			need(strings.Contains(script, member+":27017"), "mongo-rs-init must make %s:27017 a member", member)
		}
	}
	for _, name := range []string{"api-rs", "worker-rs"} {
		service, ok := project.Services[name]
		if !ok {
			continue
		}
		role := strings.TrimSuffix(name, "-rs")
		need(service.Build != nil, "service %q must be built from the Dockerfile", name)
		need(slices.Contains(service.Command, role), "service %q must run the %s role", name, role)
		need(service.HealthCheck != nil && len(service.HealthCheck.Test) > 0, "service %q has no health check", name)
		for _, key := range []string{"ROOMKEY_ADMIN_KEY", "ROOMKEY_MASTER_KEY"} {
			_, passed := service.Environment[key]
			need(passed, "service %q must be given %s from the host environment or .env", name, key)
		}
		url := service.Environment["MONGODB_URL"]
		need(url != nil && strings.Contains(*url, "replicaSet=rs0") &&
			strings.Contains(*url, "mongo-rs-1:27017,mongo-rs-2:27017,mongo-rs-3:27017"),
			"service %q must reach the set as mongodb://mongo-rs-1:27017,mongo-rs-2:27017,mongo-rs-3:27017/?replicaSet=rs0", name)
		prefix := service.Environment["ROOMKEY_QUEUE_PREFIX"]
		need(prefix != nil && *prefix != "roomkey",
			"service %q must have a ROOMKEY_QUEUE_PREFIX of its own (the plain stack shares Redis)", name)
		initDone := service.DependsOn["mongo-rs-init"]
		need(initDone.Condition == types.ServiceConditionCompletedSuccessfully,
			"service %q must wait for mongo-rs-init to complete successfully", name)
	}
	return out
}

func main() {
	selected := flag.String("select", "", "services to pick, comma-separated, as `docker compose up SERVICE...` does")
	profile := flag.String("profile", "", "profiles to enable, comma-separated, as `docker compose --profile NAME` does")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: compose-check [-profile replica-set] [-select mongo,redis] COMPOSE_FILE [OVERRIDE_FILE...]")
		os.Exit(2)
	}
	var profiles []string
	if *profile != "" {
		profiles = strings.Split(*profile, ",")
	}
	options, err := cli.NewProjectOptions(flag.Args(),
		cli.WithProfiles(profiles),
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
