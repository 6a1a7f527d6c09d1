# The two commands: `make up` runs the whole system; `make test` runs every test.
.PHONY: up test demo bench bench-quick venv

up:
	./scripts/up.sh

test:
	./scripts/test.sh $(ARGS)

demo:
	./scripts/demo.sh $(ARGS)

bench:
	./scripts/bench.sh

bench-quick:
	./scripts/bench.sh --quick

venv:
	./scripts/venv.sh
