"""Drives the official Nacos Python SDK (nacos-sdk-python 2.x, gRPC) for
e2e/tests/sdk_compat.rs.

Usage: nacos_py_driver.py HOST:HTTP_PORT GRPC_PORT LOG_DIR

Reads one JSON command per line on stdin and answers one JSON line on
stdout: {"ok": true, "result": ...} or {"ok": false, "error": "..."}.
The first line written is {"ready": true} once the SDK is connected.
Commands: register, batch_register, deregister, list_instances,
list_details, list_services, subscribe, pushes, pushed_details, quit.
Logs go to LOG_DIR.
"""

import asyncio
import json
import sys

from v2.nacos import ClientConfigBuilder, GRPCConfig, NacosNamingService
from v2.nacos.naming.model.naming_param import (
    BatchRegisterInstanceParam,
    DeregisterInstanceParam,
    ListInstanceParam,
    ListServiceParam,
    RegisterInstanceParam,
    SubscribeServiceParam,
)


def hosts(instances):
    """The instances as sorted "ip:port" strings."""
    return sorted(f"{i.ip}:{i.port}" for i in instances)


def details(instances):
    """The instances as sorted {ip, port, weight, enabled, metadata}."""
    shown = [
        {"ip": i.ip, "port": i.port, "weight": i.weight, "enabled": i.enabled, "metadata": dict(i.metadata or {})}
        for i in instances
    ]
    return sorted(shown, key=lambda d: (d["ip"], d["port"]))


def instance_param(service, spec):
    return RegisterInstanceParam(
        service_name=service,
        ip=spec["ip"],
        port=spec["port"],
        cluster_name=spec.get("cluster", ""),
        metadata=spec.get("metadata", {}),
        weight=spec.get("weight", 1.0),
    )


async def main():
    server, grpc_port, log_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    http_port = int(server.rsplit(":", 1)[1])
    config = (
        ClientConfigBuilder()
        .server_address(server)
        .namespace_id("public")
        .log_dir(log_dir)
        .cache_dir(log_dir)
        .log_level("INFO")
        # Roster's ports are ephemeral in tests: the gRPC port is not +1000.
        .grpc_config(GRPCConfig(port_offset=grpc_port - http_port))
        .build()
    )
    naming = await NacosNamingService.create_naming_service(config)
    pushes = {}
    pushed_details = {}

    def reply(**answer):
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    reply(ready=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        try:
            cmd = json.loads(line)
            op, service = cmd["op"], cmd.get("service", "")
            result = None
            if op == "register":
                result = await naming.register_instance(instance_param(service, cmd))
            elif op == "batch_register":
                param = BatchRegisterInstanceParam(
                    service_name=service, instances=[instance_param(service, s) for s in cmd["instances"]]
                )
                result = await naming.batch_register_instances(param)
            elif op == "deregister":
                param = DeregisterInstanceParam(
                    service_name=service, ip=cmd["ip"], port=cmd["port"], cluster_name=cmd.get("cluster", "")
                )
                result = await naming.deregister_instance(param)
            elif op == "list_instances":
                param = ListInstanceParam(service_name=service, subscribe=False, healthy_only=None)
                result = hosts(await naming.list_instances(param))
            elif op == "list_details":
                param = ListInstanceParam(service_name=service, subscribe=False, healthy_only=None)
                result = details(await naming.list_instances(param))
            elif op == "list_services":
                param = ListServiceParam(group_name=cmd.get("group", "DEFAULT_GROUP"), page_no=1, page_size=100)
                listed = await naming.list_services(param)
                result = {"count": listed.count, "services": sorted(listed.services)}
            elif op == "subscribe":
                seen = pushes.setdefault(service, [])
                seen_details = pushed_details.setdefault(service, [])

                async def on_change(instances, seen=seen, seen_details=seen_details):
                    seen.append(hosts(instances))
                    seen_details.append(details(instances))

                await naming.subscribe(SubscribeServiceParam(service_name=service, subscribe_callback=on_change))
                result = True
            elif op == "pushes":
                result = pushes.get(service, [])
            elif op == "pushed_details":
                result = pushed_details.get(service, [])
            elif op == "quit":
                await naming.shutdown()
                reply(ok=True, result=True)
                return
            else:
                raise ValueError(f"unknown op {op}")
            reply(ok=True, result=result)
        except Exception as e:  # the test reads the error
            reply(ok=False, error=f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    asyncio.run(main())
