# Convenience targets; the README's two commands are the scripts themselves.
.PHONY: run test check
run:
	scripts/run.sh
test check:
	scripts/test.sh
