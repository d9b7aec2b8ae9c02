#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target (fuzz/seeds/<target>/).

Seeds are valid messages of every kind each target decodes, so that
libFuzzer starts from inputs that pass the first checks and mutates them
into the corners. Run from anywhere: python3 fuzz/seeds/make_seeds.py
"""
import hashlib
import hmac
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_varint(num, value):
    return varint(num << 3) + varint(value)


def write(target, name, data):
    path = os.path.join(HERE, target)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


def js(value):
    return json.dumps(value, separators=(",", ":")).encode()


INSTANCE_WIRE = {"ip": "10.0.0.1", "port": 8080, "weight": 1.0, "healthy": True, "enabled": True,
                 "ephemeral": True, "clusterName": "DEFAULT", "metadata": {"k": "v"}}
BASE = {"namespace": "public", "serviceName": "orders", "groupName": "DEFAULT_GROUP", "module": "naming",
        "headers": {}, "requestId": "1"}

# --- grpc_payload: odd first byte = JSON body of REQUEST_TYPES[byte / 2]; even = protobuf Payload.
GRPC = [
    ("instance", 1, dict(BASE, type="registerInstance", instance=INSTANCE_WIRE)),
    ("persistent", 3, dict(BASE, type="registerInstance", instance=dict(INSTANCE_WIRE, ephemeral=False))),
    ("batch", 5, dict(BASE, type="batchRegisterInstance", instances=[INSTANCE_WIRE, dict(INSTANCE_WIRE, port=81)])),
    ("query", 7, dict(BASE, cluster="DEFAULT,east", healthyOnly=True, udpPort=0)),
    ("subscribe", 9, dict(BASE, subscribe=True, clusters="")),
    ("list", 11, dict(BASE, pageNo=1, pageSize=10, selector='{"type":"none"}')),
    ("setup", 13, {"clientVersion": "Nacos-Java-Client:v2.3.0", "tenant": "", "labels": {"module": "naming"},
                   "abilityTable": {"supportPersistentInstanceByGrpc": True}}),
    ("check", 15, {"headers": {}, "module": "internal"}),
    ("health", 17, {"headers": {}, "module": "internal"}),
    ("ack", 19, {"resultCode": 200, "errorCode": 0, "success": True, "requestId": "7"}),
]
for name, mode, body in GRPC:
    write("grpc_payload", name, bytes([mode]) + js(body))
metadata = field_bytes(3, "InstanceRequest") + field_bytes(8, "10.0.0.1") + field_bytes(7, field_bytes(1, "k") + field_bytes(2, "v"))
body = field_bytes(1, "") + field_bytes(2, js(dict(BASE, type="deregisterInstance", instance=INSTANCE_WIRE)))
write("grpc_payload", "envelope", bytes([0]) + field_bytes(2, metadata) + field_bytes(3, body))

# --- http_params: query string, NUL, form body.
HTTP = {
    "register": b"serviceName=DEFAULT_GROUP%40%40orders&ip=10.0.0.1&port=8080\0weight=2.5&enabled=true&ephemeral=false&clusterName=east&metadata=%7B%22k%22%3A%22v%22%7D",
    "metadata_pairs": b"serviceName=orders&ip=10.0.0.1&port=80&metadata=a%3D1%2Cb%3D2&healthy=false&enable=TRUE",
    "service": b"namespaceId=dev&groupName=g&serviceName=s&protectThreshold=0.5&selector=%7B%22type%22%3A%22label%22%7D&pageNo=1&pageSize=20",
    "beat": b"serviceName=orders\0beat=%7B%22ip%22%3A%2210.0.0.1%22%2C%22port%22%3A80%2C%22cluster%22%3A%22DEFAULT%22%2C%22serviceName%22%3A%22orders%22%2C%22weight%22%3A1.0%2C%22metadata%22%3A%7B%22k%22%3A%22v%22%7D%7D",
    "escapes": b"a=%zz&b=+x+&=empty&cluster=c1&port=65536&weight=NaN",
}
for name, data in HTTP.items():
    write("http_params", name, data)

# --- peer_message: first byte chooses the decoder (mod 8).
stored = {"ip": "10.0.0.1", "port": 80, "weight": 1.0, "healthy": True, "enabled": True, "ephemeral": True,
          "cluster": "DEFAULT", "metadata": {"k": "v"}}
meta_entry = field_bytes(1, "k") + field_bytes(2, "v")
published = (field_bytes(1, "public") + field_bytes(2, "DEFAULT_GROUP") + field_bytes(3, "orders")
             + field_bytes(5, "10.0.0.1") + field_varint(6, 80) + field_bytes(7, "DEFAULT")
             + varint(8 << 3 | 1) + struct.pack("<d", 1.0) + field_varint(9, 1) + field_varint(10, 1)
             + field_bytes(11, meta_entry) + field_varint(12, 42))
removed_instance = (field_bytes(1, "public") + field_bytes(2, "DEFAULT_GROUP") + field_bytes(3, "orders")
                    + field_bytes(4, "10.0.0.1") + field_varint(5, 80) + field_bytes(6, "east") + field_varint(7, 41))
client = (field_bytes(1, "10.0.0.1:80#true") + field_varint(2, 42) + field_varint(3, 0) + field_bytes(4, published)
          + field_bytes(5, removed_instance) + field_varint(6, 7))
connection = (field_bytes(1, "1700000000000_10.0.0.9_5555") + field_varint(2, 43) + field_varint(3, 1)
              + field_bytes(4, published) + field_bytes(7, "127.0.0.3:8848") + field_varint(8, 1700000000000))
write("peer_message", "distro_sync", bytes([0]) + field_bytes(1, "127.0.0.2:8848") + field_bytes(2, client)
      + field_bytes(2, connection))
write("peer_message", "client_data", bytes([1]) + client)
service = {"namespace": "public", "group": "DEFAULT_GROUP", "name": "orders"}
ikey = {"ip": "10.0.0.1", "port": 80, "cluster": "DEFAULT"}
COMMANDS = {
    "cmd_register": {"op": "registerInstance", "service": service, "instance": dict(stored, ephemeral=False)},
    "cmd_update": {"op": "updateInstance", "service": service, "instance": ikey, "weight": 3.0, "healthy": None,
                   "enabled": False, "metadata": {"a": "b"}},
    "cmd_health": {"op": "setHealth", "service": service, "instance": ikey, "healthy": False},
    "cmd_create": {"op": "createService", "service": service,
                   "meta": {"protect_threshold": 0.5, "metadata": {}, "selector": {"type": "none"}, "explicit": True}},
    "cmd_update_service": {"op": "updateService", "service": service, "protect_threshold": 0.2, "metadata": None,
                           "selector": None},
    "cmd_delete": {"op": "deleteService", "service": service},
}
for name, cmd in COMMANDS.items():
    write("peer_message", name, bytes([2]) + js(cmd))
write("peer_message", "forward_write", bytes([3]) + js({"target": 1, "body": {"write": COMMANDS["cmd_register"]}}))
write("peer_message", "forward_probe", bytes([3]) + js({"target": 1, "body": "probe"}))
write("peer_message", "vote", bytes([4]) + js({"target": 1, "body": {"vote": {"leader_id": {"term": 1, "node_id": 2}, "committed": False}, "last_log_id": None}}))
header = js({"target": 1, "body": {"vote": {"leader_id": {"term": 1, "node_id": 2}, "committed": True},
                                   "meta": {"last_log_id": None, "last_membership": {"log_id": None, "membership": {"configs": [], "nodes": {}}}, "snapshot_id": "s"},
                                   "offset": 0, "data": [], "done": True}})
write("peer_message", "snapshot_frame", bytes([5]) + len(header).to_bytes(4, "big") + header + b"[]")
write("peer_message", "snapshot_entries", bytes([6]) + js([{"service": service, "meta": None, "instances": [dict(stored, ephemeral=False)]}]))
write("peer_message", "member_report", bytes([7]) + field_bytes(1, "127.0.0.2:8848") + field_bytes(2, "0.1.0") + field_varint(3, 1) + field_varint(4, 99) + field_varint(5, 1700000000000) + field_varint(6, 1))

# --- peer_signature: mode byte (bit 0: accept the v1 scheme), "name: value" lines, an empty line, the body.
# Signed with the target's FUZZ_SECRET at its FUZZ_NOW_MS (node/src/fuzzing.rs), so the seeds pass.
FUZZ_SECRET = b"roster-fuzz-secret-7Kq2Wm9Xz4Lp8Vn3"
FUZZ_NOW_MS = 1_700_000_000_000
FUZZ_PATH = "/roster.peer.v1.Peer/DistroSync"
SIGNER = "127.0.0.2:8848"


def signed(body, time, nonce, legacy=False, v2=True):
    digest = hashlib.sha256(body).hexdigest()
    lines = [("x-roster-peer", SIGNER), ("x-roster-peer-time", str(time))]
    if v2:
        message = f"roster-peer-v2\n{SIGNER}\n{time}\n{nonce.hex()}\nPOST\n{FUZZ_PATH}\n{digest}"
        tag = hmac.new(FUZZ_SECRET, message.encode(), hashlib.sha256).hexdigest()
        lines += [("x-roster-peer-nonce", nonce.hex()), ("x-roster-peer-digest", digest),
                  ("x-roster-peer-signature-v2", tag)]
    if legacy:
        message = f"roster-peer-v1\n{SIGNER}\n{time}\nPOST\n{FUZZ_PATH}"
        lines.append(("x-roster-peer-signature", hmac.new(FUZZ_SECRET, message.encode(), hashlib.sha256).hexdigest()))
    head = "".join(f"{k}: {v}\n" for k, v in lines).encode()
    return bytes([1 if legacy else 0]) + head + b"\n" + body


sync_body = b"\x00\x00\x00\x00\x10" + field_bytes(1, "127.0.0.2:8848") + field_bytes(2, client)[:4]
write("peer_signature", "signed", signed(sync_body, FUZZ_NOW_MS - 1500, bytes(range(16))))
write("peer_signature", "signed_empty_body", signed(b"", FUZZ_NOW_MS + 59_000, bytes(range(16, 32))))
write("peer_signature", "signed_both_schemes", signed(sync_body, FUZZ_NOW_MS, bytes(range(32, 48)), legacy=True))
write("peer_signature", "signed_v1_only", signed(sync_body, FUZZ_NOW_MS, b"", legacy=True, v2=False))
