# llm-router in a container: a multi-stage build of the release binary, run as
# a non-root user on a distroless base (no shell, no package manager).
#
#   docker build -t llm-router .
#   docker run -p 8080:8080 --env-file .env llm-router
#
# The image serves /etc/llm-router/config.toml (the shipped config.toml: the
# built-in mock until you mount your own) on 0.0.0.0:8080. Mount another
# config over it, or any file `llm-router serve --config` reads (a LiteLLM
# config.yaml, the other routers' files — see README "Coming from …"):
#
#   docker run -p 8080:8080 -v $PWD/config.yaml:/etc/llm-router/config.yaml \
#     llm-router --config /etc/llm-router/config.yaml
#
# compose.yaml runs two replicas sharing limits, cooldowns and circuits in Redis.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
# ring (TLS) needs a C compiler, which the rust image has; nothing else is needed.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
# Swagger UI and ReDoc, compiled into the binary (/docs, /redoc).
COPY assets ./assets
COPY benches ./benches
COPY examples ./examples
COPY tests ./tests
COPY config.toml ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin llm-router \
    && cp target/release/llm-router /llm-router

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /llm-router /usr/local/bin/llm-router
COPY config.toml /etc/llm-router/config.toml
# The shipped config listens on 127.0.0.1; in a container it must be reachable.
ENV LLM_ROUTER_SERVER_HOST=0.0.0.0 \
    LLM_ROUTER_SERVER_PORT=8080
# Relative paths in the config (log dir, keys_file) are relative to its directory;
# the non-root user (uid 65532) can write logs only to a mounted volume or /tmp.
WORKDIR /etc/llm-router
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/llm-router"]
CMD ["serve", "--config", "/etc/llm-router/config.toml"]
