# The deploy kit (deploy/): manifests, task definition, IAM documents and the
# hardening they declare, checked offline. Included by the top Makefile.
# deploy/README.md explains what each check proves.
#
#   make deploy-test     parse, schemas, kustomize, consistency, parliament,
#                        ECS register-task-definition (moto), docker/run.sh,
#                        and the image run as uid 65532 on a read-only root
#   make deploy-measure  peak memory of audits, for sizing (prints figures)

.PHONY: deploy-test deploy-measure

## deploy-test: every check of deploy/ (tests/deploy/deploy-test.sh).
deploy-test: venv $(VENV)/.deploy-tools $(VENV)/.image-tools image-buildah
	@tests/deploy/ensure-tools.sh
	DSPM_TEST_PYTHON=$(abspath $(PY)) tests/deploy/deploy-test.sh

## deploy-measure: peak RSS of scan --demo, of the seeded moto account, of a
## large synthetic account, and of two concurrent audits by the server.
deploy-measure: venv static
	$(PY) tests/deploy/measure_memory.py $(STATIC_BIN)

# kubernetes-validate (with the Kubernetes schemas), parliament, PyYAML and
# jsonpatch, pinned, next to moto in .venv.
$(VENV)/.deploy-tools: tests/deploy/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/deploy/requirements.txt
	touch $@
