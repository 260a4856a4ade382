"""A small in-memory OpenStack (Keystone, Nova, Neutron, Glance) for the tests.

It answers exactly the calls `CloudClient` makes, with the JSON shapes of the real
APIs, so the provider runs against the real openstacksdk with nothing leaving the
machine. Two ways to serve it:

- `install(requests_mocker)`: behind requests-mock, in the same process (unit tests);
- `serve()`: a threaded HTTP server on 127.0.0.1 (the autoscaler's monitor process
  talks to it, e.g. in the autoscaling test).

A `Hypervisor` can be attached: it is told when a server boots and when it is deleted.
The autoscaling test uses one that starts a real local Ray node per server, the way
cloud-init would run `ray start` on a real VM.

Failure knobs, for the tests of each failure the provider must survive:
`quota_instances` (413/403 on create), `boot_outcomes` (a queue of "ACTIVE",
"BUILD" = stuck forever, "ERROR"), `fail_next_requests` (raise a connect timeout),
and `vanish(server_id)` (a server deleted behind the provider's back).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

TOKEN = "fake-token-0123456789"
PROJECT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


class Hypervisor(Protocol):
    """What the fake cloud tells about server lifecycles."""

    def boot(self, server_id: str, name: str, flavor: dict) -> None:
        """Bring the server up; return when it is running (the server stays BUILD until then)."""

    def destroy(self, server_id: str) -> None:
        """Stop the server's processes."""


@dataclass
class FakeServer:
    id: str
    name: str
    flavor: dict
    image_id: str
    network_id: str
    metadata: dict[str, str]
    created: datetime
    status: str = "BUILD"
    fixed_ip: str = ""
    port_id: str = ""
    fault: str = ""


@dataclass
class FakeOpenStack:
    """The cloud's state, and the request handler both transports share."""

    base_url: str = "http://cloud.example.test"
    quota_instances: int = 10
    boot_outcomes: deque = field(default_factory=deque)
    fail_next_requests: int = 0
    hypervisor: Hypervisor | None = None
    flavors: dict[str, dict] = field(default_factory=dict)
    servers: dict[str, FakeServer] = field(default_factory=dict)
    floating_ips: dict[str, dict] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._lock = threading.RLock()
        self._ip_counter = 10
        if not self.flavors:
            self.flavors = {
                "eo1.large": {"id": "f-cpu-1", "name": "eo1.large", "vcpus": 1, "ram": 4096,
                              "gpus": 0},
                "vm.a6000.1": {"id": "f-gpu-1", "name": "vm.a6000.1", "vcpus": 1,
                               "ram": 8192, "gpus": 1},
            }
        self.images = {"img-ubuntu": {"id": "img-ubuntu", "name": "Ubuntu 22.04 LTS",
                                      "status": "active"}}
        self.networks = {
            "net-private": {"id": "net-private", "name": "private", "router:external": False},
            "net-external": {"id": "net-external", "name": "external", "router:external": True},
        }

    # ---------------------------------------------------------------- knobs
    def vanish(self, server_id: str) -> None:
        """Delete a server without the provider knowing (an operator, a host failure)."""
        with self._lock:
            server = self.servers.pop(server_id)
        if self.hypervisor is not None:
            self.hypervisor.destroy(server.id)

    def add_server(self, name: str, flavor: str, metadata: dict[str, str]) -> str:
        """Put an ACTIVE server in place without booting it (e.g. a head started by hand)."""
        with self._lock:
            self._ip_counter += 1
            server = FakeServer(
                id=str(uuid.uuid4()), name=name, flavor=self.flavors[flavor],
                image_id="img-ubuntu", network_id="net-private", metadata=dict(metadata),
                created=datetime.now(UTC), status="ACTIVE",
                fixed_ip=f"192.168.0.{self._ip_counter}", port_id=str(uuid.uuid4()))
            self.servers[server.id] = server
        return server.id

    def server_by_name(self, name: str) -> FakeServer:
        return next(s for s in self.servers.values() if s.name == name)

    # ---------------------------------------------------------------- transports
    def install(self, mocker: Any) -> None:
        """Answer every request to `base_url` through a requests-mock Mocker."""
        import requests_mock

        def callback(request, context):
            status, headers, body = self.handle(request.method, request.url, request.body)
            context.status_code = status
            context.headers.update(headers)
            return body

        mocker.register_uri(requests_mock.ANY, re.compile(re.escape(self.base_url) + ".*"),
                            content=callback)

    def serve(self) -> tuple[str, Callable[[], None]]:
        """Serve on 127.0.0.1 (a free port); returns (base URL, shutdown function).

        `base_url` is set to the served address, so the catalog points back here."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                status, headers, payload = fake.handle(
                    self.command, fake.base_url + self.path, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:  # keep test output readable
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()

        def shutdown() -> None:
            httpd.shutdown()
            httpd.server_close()

        return self.base_url, shutdown

    # ---------------------------------------------------------------- routing
    def handle(self, method: str, url: str, body: bytes | str | None
               ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.requests.append((method, path))
            if self.fail_next_requests > 0 and not path.startswith("/identity"):
                self.fail_next_requests -= 1
                import requests

                raise requests.exceptions.ConnectTimeout(f"connect timeout to {url}")
        payload = json.loads(body) if body else {}
        service, _, rest = path.lstrip("/").partition("/")
        route = {"identity": self._identity, "compute": self._compute,
                 "network": self._network, "image": self._image}.get(service)
        if route is None:
            return _json(404, {"error": f"no service {service}"})
        with self._lock:
            return route(method, "/" + rest if rest else "", query, payload)

    def _endpoint(self, service: str) -> str:
        return f"{self.base_url}/{service}"

    def _identity(self, method, path, query, payload):
        if path in ("", "/v3"):
            version = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                       "links": [{"rel": "self", "href": self._endpoint("identity") + "/v3/"}],
                       "media-types": [{"base": "application/json",
                                        "type": "application/vnd.openstack.identity-v3+json"}]}
            if path == "":
                return _json(300, {"versions": {"values": [version]}})
            return _json(200, {"version": version})
        if path == "/v3/auth/tokens" and method == "POST":
            catalog = [
                {"type": kind, "name": name, "id": f"svc-{name}", "endpoints": [
                    {"interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                     "url": url, "id": f"ep-{name}"}]}
                for kind, name, url in (
                    ("identity", "keystone", self._endpoint("identity") + "/v3"),
                    ("compute", "nova", self._endpoint("compute") + "/v2.1"),
                    ("network", "neutron", self._endpoint("network")),
                    ("image", "glance", self._endpoint("image")),
                )
            ]
            token = {
                "methods": ["password"], "expires_at": "2999-01-01T00:00:00.000000Z",
                "issued_at": _now_iso(), "catalog": catalog, "roles": [{"id": "r1",
                                                                         "name": "member"}],
                "project": {"id": PROJECT_ID, "name": "eominer",
                            "domain": {"id": "default", "name": "Default"}},
                "user": {"id": "u1", "name": "eominer", "domain": {"id": "default",
                                                                  "name": "Default"}},
            }
            status, headers, body = _json(201, {"token": token})
            headers["X-Subject-Token"] = TOKEN
            return status, headers, body
        return _json(404, {"error": {"message": f"no identity route {path}"}})

    # ---------------------------------------------------------------- nova
    def _compute(self, method, path, query, payload):
        if path in ("", "/v2.1"):
            version = {"id": "v2.1", "status": "CURRENT", "version": "2.79",
                       "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
                       "links": [{"rel": "self", "href": self._endpoint("compute") + "/v2.1/"}]}
            if path == "":
                return _json(200, {"versions": [version]})
            return _json(200, {"version": version})
        path = path.removeprefix("/v2.1")
        if path == "/flavors/detail" or path == "/flavors":
            return _json(200, {"flavors": [_flavor(f) for f in self.flavors.values()]})
        match = re.fullmatch(r"/flavors/([^/]+)", path)
        if match:
            flavor = self._find(self.flavors.values(), match.group(1))
            if flavor is None:
                return _not_found("flavor", match.group(1))
            return _json(200, {"flavor": _flavor(flavor)})
        if path == "/servers" and method == "POST":
            return self._create_server(payload["server"])
        if path == "/servers/detail" and method == "GET":
            servers = list(self.servers.values())
            if "name" in query:
                pattern = re.compile(query["name"])
                servers = [s for s in servers if pattern.search(s.name)]
            return _json(200, {"servers": [self._server_body(s) for s in servers]})
        match = re.fullmatch(r"/servers/([^/]+)(/metadata)?", path)
        if match:
            server = self.servers.get(match.group(1))
            if server is None:
                return _not_found("server", match.group(1))
            if match.group(2) and method == "POST":
                server.metadata.update(payload["metadata"])
                return _json(200, {"metadata": server.metadata})
            if method == "DELETE":
                del self.servers[server.id]
                for fip in self.floating_ips.values():
                    if fip["port_id"] == server.port_id:
                        fip["port_id"] = None
                        fip["fixed_ip_address"] = None
                if self.hypervisor is not None:
                    threading.Thread(target=self.hypervisor.destroy, args=(server.id,),
                                     daemon=True).start()
                return 204, {}, b""
            return _json(200, {"server": self._server_body(server)})
        return _json(404, {"itemNotFound": {"code": 404, "message": f"no route {path}"}})

    def _create_server(self, spec: dict):
        if len(self.servers) >= self.quota_instances:
            return _json(403, {"forbidden": {"code": 403, "message": (
                f"Quota exceeded for instances: Requested 1, but already used "
                f"{len(self.servers)} of {self.quota_instances} instances")}})
        flavor = self._find(self.flavors.values(), spec["flavorRef"])
        if flavor is None:
            return _json(400, {"badRequest": {"code": 400,
                                              "message": f"Invalid flavorRef {spec['flavorRef']}"}})
        self._ip_counter += 1
        server = FakeServer(
            id=str(uuid.uuid4()), name=spec["name"], flavor=flavor,
            image_id=spec.get("imageRef", ""),
            network_id=(spec.get("networks") or [{}])[0].get("uuid", ""),
            metadata=dict(spec.get("metadata") or {}), created=datetime.now(UTC),
            fixed_ip=f"192.168.0.{self._ip_counter}", port_id=str(uuid.uuid4()),
        )
        outcome = self.boot_outcomes.popleft() if self.boot_outcomes else "ACTIVE"
        self.servers[server.id] = server
        if outcome == "ERROR":
            server.status = "ERROR"
            server.fault = "No valid host was found. There are not enough hosts available."
        elif outcome == "ACTIVE":
            if self.hypervisor is None:
                server.status = "ACTIVE"
            else:
                threading.Thread(target=self._boot, args=(server,), daemon=True).start()
        return _json(202, {"server": {"id": server.id, "links": [], "adminPass": "x",
                                      "OS-DCF:diskConfig": "MANUAL",
                                      "security_groups": spec.get("security_groups", [])}})

    def _boot(self, server: FakeServer) -> None:
        try:
            self.hypervisor.boot(server.id, server.name, server.flavor)
        except Exception as exc:  # the VM failed to come up: what Nova shows is ERROR
            server.status, server.fault = "ERROR", f"boot failed: {exc}"
            return
        with self._lock:
            if server.id in self.servers:
                server.status = "ACTIVE"
            elif self.hypervisor is not None:  # deleted while booting
                self.hypervisor.destroy(server.id)

    def _server_body(self, s: FakeServer) -> dict:
        addresses = {}
        if s.status != "ERROR":
            entries = [{"version": 4, "addr": s.fixed_ip, "OS-EXT-IPS:type": "fixed",
                        "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}]
            entries += [{"version": 4, "addr": f["floating_ip_address"],
                         "OS-EXT-IPS:type": "floating",
                         "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:00:00:01"}
                        for f in self.floating_ips.values() if f["port_id"] == s.port_id]
            addresses = {"private": entries}
        body = {
            "id": s.id, "name": s.name, "status": s.status, "metadata": s.metadata,
            "created": s.created.strftime("%Y-%m-%dT%H:%M:%SZ"), "updated": _now_iso(),
            "addresses": addresses, "flavor": {"original_name": s.flavor["name"],
                                              "vcpus": s.flavor["vcpus"],
                                              "ram": s.flavor["ram"], "disk": 20,
                                              "ephemeral": 0, "swap": 0, "extra_specs": {}},
            "image": {"id": s.image_id}, "tenant_id": PROJECT_ID, "user_id": "u1",
            "links": [], "OS-EXT-STS:vm_state": s.status.lower(), "key_name": None,
            "OS-EXT-STS:task_state": None, "tags": [], "security_groups": [],
        }
        if s.fault:
            body["fault"] = {"code": 500, "message": s.fault, "created": _now_iso()}
        return body

    # ---------------------------------------------------------------- neutron, glance
    def _network(self, method, path, query, payload):
        if path == "":
            return _json(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
                {"rel": "self", "href": self._endpoint("network") + "/v2.0/"}]}]})
        path = path.removeprefix("/v2.0")
        if path == "/networks":
            nets = [n for n in self.networks.values()
                    if "name" not in query or n["name"] == query["name"]]
            return _json(200, {"networks": nets})
        match = re.fullmatch(r"/networks/([^/]+)", path)
        if match:
            net = self.networks.get(match.group(1))
            return _json(200, {"network": net}) if net else _not_found("network", match[1])
        if path == "/ports":
            ports = [{"id": s.port_id, "device_id": s.id, "network_id": s.network_id,
                      "fixed_ips": [{"ip_address": s.fixed_ip}], "status": "ACTIVE"}
                     for s in self.servers.values()
                     if s.status == "ACTIVE" and query.get("device_id") in (None, s.id)]
            return _json(200, {"ports": ports})
        if path == "/floatingips" and method == "GET":
            fips = [f for f in self.floating_ips.values()
                    if "port_id" not in query or f["port_id"] == query["port_id"]]
            return _json(200, {"floatingips": fips})
        if path == "/floatingips" and method == "POST":
            spec = payload["floatingip"]
            if spec["floating_network_id"] not in self.networks:
                return _not_found("network", spec["floating_network_id"])
            fip_id = str(uuid.uuid4())
            port = next((s for s in self.servers.values() if s.port_id == spec.get("port_id")),
                        None)
            fip = {"id": fip_id, "floating_ip_address": f"203.0.113.{len(self.floating_ips) + 10}",
                   "floating_network_id": spec["floating_network_id"],
                   "port_id": spec.get("port_id"),
                   "fixed_ip_address": port.fixed_ip if port else None, "status": "ACTIVE",
                   "project_id": PROJECT_ID, "tenant_id": PROJECT_ID}
            self.floating_ips[fip_id] = fip
            return _json(201, {"floatingip": fip})
        match = re.fullmatch(r"/floatingips/([^/]+)", path)
        if match and method == "DELETE":
            if self.floating_ips.pop(match.group(1), None) is None:
                return _not_found("floatingip", match.group(1))
            return 204, {}, b""
        return _json(404, {"NeutronError": {"message": f"no route {path}"}})

    def _image(self, method, path, query, payload):
        if path == "":
            return _json(300, {"versions": [{"id": "v2.15", "status": "CURRENT", "links": [
                {"rel": "self", "href": self._endpoint("image") + "/v2/"}]}]})
        path = path.removeprefix("/v2")
        if path == "/images":
            images = [i for i in self.images.values()
                      if "name" not in query or i["name"] == query["name"]]
            return _json(200, {"images": images})
        match = re.fullmatch(r"/images/([^/]+)", path)
        if match:
            image = self.images.get(match.group(1))
            return _json(200, image) if image else _not_found("image", match.group(1))
        return _json(404, {"message": f"no route {path}"})

    @staticmethod
    def _find(items, name_or_id: str) -> dict | None:
        return next((i for i in items if name_or_id in (i["id"], i["name"])), None)


def _flavor(f: dict) -> dict:
    extra = {"resources:VGPU": str(f["gpus"])} if f.get("gpus") else {}
    return {"id": f["id"], "name": f["name"], "vcpus": f["vcpus"], "ram": f["ram"],
            "disk": 20, "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
            "os-flavor-access:is_public": True, "extra_specs": extra, "links": []}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _not_found(kind: str, ident: str):
    return _json(404, {"itemNotFound": {"code": 404, "message": f"{kind} {ident} not found"}})
