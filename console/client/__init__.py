"""The console's only transport: async gRPC (grpc.aio over mTLS) to the two agents of a
cluster, turned into typed events (``console.client.events``). Widgets never import this
package's channels or stubs; they receive events and ask the session to send commands."""
