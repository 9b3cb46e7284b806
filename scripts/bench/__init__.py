"""ward's benchmark bed: runs every scenario and writes results + a chart.

Run it through scripts/bench.sh, which installs the tools and builds the
release binaries first. Python standard library only; the load is made by
real tools (h2load, benches/tools/loadgen.rs) against real processes (ward,
the no-op server benches/tools/noop_authz.rs, Envoy, nginx, Redis), each
pinned to a CPU.

    python3 scripts/bench [--quick] [--only direct,envoy,memory,tail] [--publish]
    python3 scripts/bench --only direct --ward-bin AFTER --baseline-bin BEFORE

Phases (see docs/benchmarks.md for what each measures and why):
  direct  gRPC Check straight to the server (server on CPU 0, load on CPU 1)
  envoy   HTTP through a real Envoy (--concurrency 1) to an nginx upstream
  memory  ward's RSS idle and with 10k / 100k / 1M cached identities
  tail    a long run with fresh tokens and expiring entries: p99.9/p50, stalls

Every run starts its server fresh, repetitions are interleaved across
scenarios, and the median is reported. Every process is killed on exit,
including on Ctrl-C or failure. Results go to bench-results/<timestamp>/
(results.json, results.md, chart.svg); --publish also copies the chart to
docs/bench/latest.svg and the table into docs/benchmarks.md.

With --baseline-bin, the direct phase runs each ward scenario against two
builds, alternating them in every repetition, and the report gains an
after / before table (compare.py); --ward-bin (WARD_BIN) picks the build
under test, by default this checkout's.

To add a scenario, append to DIRECT_SCENARIOS or ENVOY_SCENARIOS in
scenarios.py: a scenario names the server to start and the load to send.
Scenarios that need more processes (Redis for sessions and API keys, say)
get a `setup` hook that starts them and returns extra config for ward.

Modules, one job each: settings (fixed choices: paths, CPUs, load shapes),
procs (child processes), measure (CPU accounting, retries of noisy runs,
h2load's report), bed (the run's state and the servers it starts),
envoy_bootstrap (Envoy's config), credentials (tokens, sessions, API keys),
scenarios (what is measured), phases/ (one module per phase), targets,
machine, report (markdown), compare (two builds: order, ratios, table),
chart (SVG), results (files written, --publish).
"""
