# mcp-sidecar, with the demo MCP servers of examples/ (used by docker-compose.yml).
#   docker build -t mcp-sidecar:local .
#   docker run --rm -v $PWD/deploy/sidecar/compose.yaml:/etc/mcp-sidecar/config.yaml:ro mcp-sidecar:local
# stdio servers run as child processes of the sidecar, so their interpreters and files must be
# in this image (or in an image built FROM it).
FROM python:3.12-slim-bookworm AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
RUN pip install .

FROM python:3.12-slim-bookworm
# util-linux (setpriv, in the base image) gives every stdio child a parent-death signal.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
COPY examples/ examples/
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin sidecar
USER 10001
EXPOSE 9464 9465
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["mcp-sidecar", "status", "--url", "http://127.0.0.1:9464"]
ENTRYPOINT ["mcp-sidecar"]
CMD ["run", "-c", "/etc/mcp-sidecar/config.yaml"]
