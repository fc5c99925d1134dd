# purger in a container: the CLI as entry point, state on a volume, no secrets in the image
# (pass FASTLY_API_TOKEN and friends at run time). Without -it there is no terminal to
# confirm on, so a run needs --yes:
#   docker run --rm -e FASTLY_API_TOKEN -v purger-state:/state IMAGE run plan.json --yes \
#       --provider fastly --service-id SVC --key-template 'project/{name}' --state purge.sqlite

FROM python:3.11-slim AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.2.2
COPY pyproject.toml README.md ./
COPY purger ./purger
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 purger \
    && mkdir /state \
    && chown purger /state
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/*.whl \
    && rm -rf /tmp/dist
USER 10001
WORKDIR /state
VOLUME ["/state"]
ENTRYPOINT ["purger"]
CMD ["--help"]
