# purger in a container: the CLI as entry point, state on a volume, no secrets in the image
# (pass FASTLY_API_TOKEN and friends at run time). Without -it there is no terminal to
# confirm on, so a run needs --yes:
#   docker run --rm -e FASTLY_API_TOKEN -v purger-state:/state IMAGE run plan.json --yes \
#       --provider fastly --service-id SVC --key-template 'project/{name}' --state purge.sqlite

FROM python:3.11-slim AS build
WORKDIR /src
# Every Python package comes from constraints.txt, the build backend too: the wheel is built
# without an isolated build environment, whose packages pip would choose by itself.
COPY constraints.txt pyproject.toml README.md ./
RUN pip install --no-cache-dir --constraint constraints.txt build hatchling
COPY purger ./purger
RUN python -m build --wheel --no-isolation --outdir /dist

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 purger \
    && mkdir /state \
    && chown purger /state
COPY constraints.txt /tmp/constraints.txt
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir --constraint /tmp/constraints.txt /tmp/dist/*.whl \
    && rm -rf /tmp/dist /tmp/constraints.txt
USER 10001
WORKDIR /state
VOLUME ["/state"]
ENTRYPOINT ["purger"]
CMD ["--help"]
