# The example Rust agent (ready-signal/examples/agent.rs), static, alone in a scratch image.
FROM scratch
COPY agent /agent
USER 10001:10001
ENTRYPOINT ["/agent"]
