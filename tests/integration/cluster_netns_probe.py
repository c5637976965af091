"""A probe: a helper process inside one network namespace, answering JSON requests.

Started by ``tests.integration.cluster_netns.Probe`` as
``python -m tests.integration.cluster_netns_probe CA CERT KEY``; reads one JSON request per
stdin line and writes one JSON reply line: ``status`` / ``logs`` (gRPC to an agent, mTLS
with the admin certificate, or with other files given in ``tls``), ``http`` (GET),
``udp`` (send one datagram from a given source address), ``health`` (grpc.health.v1
Check of a service name), ``rpc`` (a configuration call of
the Agent service, request and reply as JSON; a refusal as its status code). Errors are
replies, never exits.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import socket
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict, ParseDict
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos import mirrorpair_pb2 as pb
from protos import mirrorpair_pb2_grpc as pb_grpc
from protos.security.credentials import channel_credentials, secure_channel, server_name

_REQUESTS = {
    "GetConfig": pb.GetConfigRequest,
    "PrepareConfig": pb.PrepareConfigRequest,
    "CommitConfig": pb.CommitConfigRequest,
    "AbortConfig": pb.AbortConfigRequest,
    "ListConfigVersions": pb.ListConfigVersionsRequest,
}


def serve(ca: str, cert: str, key: str) -> None:
    """Answer one JSON request per stdin line with one JSON line (never raises)."""
    creds = channel_credentials(ca, cert, key)
    # Short reconnect backoff: a node that comes back must answer the next poll.
    opts = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 300)]
    channels: dict[str, grpc.Channel] = {}

    def channel_of(req: dict[str, Any]) -> grpc.Channel:
        if req["address"] not in channels:
            made = secure_channel(req["address"], creds, server_name(req["node"]), opts)
            channels[req["address"]] = made
        return channels[req["address"]]

    def stub(req: dict[str, Any]) -> pb_grpc.AgentStub:
        return pb_grpc.AgentStub(channel_of(req))

    def as_dict(msg: Any) -> dict[str, Any]:
        return MessageToDict(
            msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )

    def handle(req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status" and "tls" in req:  # one-off call, files NOT checked locally first
            ca_pem, cert_pem, key_pem = (Path(f).read_bytes() if f else None for f in req["tls"])
            own = grpc.ssl_channel_credentials(ca_pem, key_pem, cert_pem)
            with secure_channel(req["address"], own, server_name(req["node"])) as channel:
                reply = pb_grpc.AgentStub(channel).GetStatus(pb.GetStatusRequest(), timeout=3)
            return {"status": as_dict(reply)}
        if op == "status":
            return {"status": as_dict(stub(req).GetStatus(pb.GetStatusRequest(), timeout=2))}
        if op == "health":  # grpc.health.v1 Check of one service: its status's name
            check = health_pb2.HealthCheckRequest(service=req["service"])
            try:
                reply = health_pb2_grpc.HealthStub(channel_of(req)).Check(check, timeout=2)
            except grpc.RpcError as e:
                if e.code() is grpc.StatusCode.UNAVAILABLE:  # a fresh channel next time
                    channels.pop(req["address"]).close()
                return {"code": e.code().name}
            return {"status": health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}
        if op == "logs":
            reply = stub(req).GetLogs(
                pb.GetLogsRequest(module=req["module"], limit=1000), timeout=2
            )
            return {"entries": [as_dict(e) for e in reply.entries]}
        if op == "rpc":  # any unary Agent call: {"method", "request": dict}; errors by code
            method = getattr(stub(req), req["method"])
            msg = ParseDict(req.get("request", {}), _REQUESTS[req["method"]]())
            try:
                return {"reply": as_dict(method(msg, timeout=req.get("deadline", 10)))}
            except grpc.RpcError as e:
                if e.code() is grpc.StatusCode.UNAVAILABLE:  # a fresh channel next time
                    channels.pop(req["address"]).close()
                return {"code": e.code().name, "details": e.details()}
        if op == "http":
            with urllib.request.urlopen(req["url"], timeout=1.0) as resp:
                return {"body": resp.read().decode()}
        if op == "http_until":  # poll GET until the body is `expect`: when (monotonic)?
            url = urllib.parse.urlsplit(req["url"])
            deadline = time.monotonic() + req["within"]
            while time.monotonic() < deadline:
                # A short connect timeout: a SYN sent to the dead node's MAC (before the
                # gratuitous ARP) must not hide the moment the survivor answers.
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=0.05)
                with contextlib.suppress(OSError, http.client.HTTPException):
                    conn.connect()
                    conn.sock.settimeout(2.0)
                    conn.request("GET", url.path or "/")
                    if conn.getresponse().read().decode() == req["expect"]:
                        return {"t": time.monotonic()}
                conn.close()
                time.sleep(req["step"])
            return {"error": f"no {req['expect']!r} from {req['url']} in {req['within']} s"}
        if op == "udp":
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(tuple(req["src"]))
                s.sendto(base64.b64decode(req["data"]), tuple(req["dst"]))
            return {"ok": True}
        return {"error": f"unknown op {op!r}"}

    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = handle(req)
        except Exception as exc:  # report, keep serving
            channel = channels.pop(req.get("address", ""), None)
            if channel is not None:  # a fresh channel next time
                channel.close()
            out = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
