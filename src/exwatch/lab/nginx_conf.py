"""nginx configuration for the lab's web-facing hosts, rendered from the route table.

One `server` block per host (its own listen address, certificate and TLS versions); how
the host behaves is held in per-host variables that one shared include file per layout
reads, so a lab of thousands of hosts stays a small, fast config.  An empty variable
makes `add_header` send nothing: that is how a header is present on one host and
stripped on another.  What each layout does is data in `exwatch.lab.routes`, shared with
the Python backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from exwatch.lab import routes
from exwatch.lab.plan import Plan
from exwatch.lab.routes import Layout, Location, Site

HEADERS_MORE = Path("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so")


def _q(value: str) -> str:
    """Quote a value for nginx (double quotes, or single ones around a value that holds
    double quotes); lab values never hold backslashes, newlines or both quotes."""
    quote = "'" if '"' in value else '"'
    if any(c in value for c in ("\\", "\n", quote)):
        raise ValueError(f"value not safe for an nginx config: {value!r}")
    return f"{quote}{value}{quote}"


def _value(value: str) -> str:
    """A bare `$variable` stays bare (readable config), anything else is quoted."""
    if value.startswith("$") and value[1:].replace("_", "").isalnum():
        return value
    return _q(value)


def _location(loc: Location, headers_more: bool) -> str:
    body = []
    if loc.internal:
        body.append("internal;\n")
    if loc.root is not None:
        body.append(f"root {loc.root};\n")
    body += [f"add_header {name} {_value(value)} always;\n" for name, value in loc.headers]
    if loc.server is not None and headers_more:
        body.append(f"more_set_headers {_q('Server: ' + loc.server)};\n")
    if loc.try_files:
        body.append(f"try_files {' '.join(loc.try_files)};\n")
    if loc.status is not None and loc.builtin:
        body.append(f"return {loc.status};\n")  # nginx's own page for the status
    elif loc.status is not None:
        body.append(f"return {loc.status} {_q(loc.text)};\n")
    match = f"{loc.match} " if loc.match else ""
    return f"location {match}{loc.pattern} {{\n{''.join(body)}}}\n"


def include_text(layout: Layout, headers_more: bool = True) -> str:
    """One layout as an nginx include file (server-level directives and locations)."""
    out = [f"root {layout.root};\n"]
    if layout.index:
        out.append(f"index {layout.index};\n")
    if layout.error_page_404:
        out.append(f"error_page 404 {layout.error_page_404};\n")
    out += [_location(loc, headers_more) for loc in layout.locations]
    return "".join(out)


def _map(source: str, target: str, values: dict[str, str]) -> str:
    lines = [f"    map {source} {target} {{"]
    lines += [f"        {key} {_q(value)};" for key, value in values.items()]
    lines += ['        default "";', "    }"]
    return "\n".join(lines)


_RULE_INPUT = {"cookie": "$http_cookie", "uri": "$request_uri"}


def _rule_maps() -> list[str]:
    """One map per check rule: "1" when the site's gate is on and the input matches."""
    out = ["    # Check rules (routes.RULES): gate and input in one map each."]
    for n, rule in enumerate(routes.RULES):
        regex = "^1:" + ("" if rule.anchored else ".*?") + f"(?:{rule.pattern})"
        out.append(f'    map "${rule.gate}:{_RULE_INPUT[rule.input]}" $lab_hit_{n} {{')
        out.append(f"        {_q('~*' + regex)} 1;")
        out += ['        default "";', "    }"]
    return out


def rules_include() -> str:
    """The server-level part of the check rules, in order (the first that fires wins)."""
    out = []
    for n, rule in enumerate(routes.RULES):
        action = "return 444;" if rule.abort else f"rewrite ^ {rule.path} last;"
        out.append(f"if ($lab_hit_{n}) {{ {action} }}\n")
    return "".join(out)


def _http_maps() -> str:
    kinds = [f'        "~*{pattern}" {kind};' for pattern, kind in routes.AUTH_KINDS]
    return "\n".join(
        [
            "    # Which challenge to send depends on what the client offered (routes.AUTH_KINDS).",
            "    map $http_authorization $lab_auth_kind {",
            *kinds,
            "        default none;",
            "    }",
            _map("$lab_auth_kind", "$lab_auth1", routes.AUTH_FIRST),
            _map("$lab_auth_kind", "$lab_auth2", routes.AUTH_SECOND),
            "    map $http_host $lab_host {",
            '        "" "$server_addr:$server_port";',
            "        default $http_host;",
            "    }",
            "    # Load-balanced hosts answer each request of a connection from the next",
            "    # server (routes.variant_for_request): round robin by request number.",
            "    map $connection_requests $lab_rr2 {",
            '        "~[13579]$" a;',
            "        default b;",
            "    }",
            "    map $connection_requests $lab_rr3 {",
            *(
                f"        {n} {'abc'[routes.variant_for_request(n, 3)]};"
                for n in range(1, routes.RR_REQUESTS + 1)
            ),
            "        default a;",
            "    }",
            *_rule_maps(),
        ]
    )


def _server_block(s: Site, port: int, workdir: Path, headers_more: bool) -> str:
    lines = [
        "    server {",
        f"        listen {s.ip}:{port} ssl;",
        f"        ssl_certificate {s.cert};",
        # Per server, not per http: each host offers what its emulated OS has (the one
        # server on a listen address is its default, whose protocols the handshake uses).
        f"        ssl_protocols {' '.join(s.tls_versions)};",
    ]
    if headers_more and s.server:
        lines.append(f"        more_set_headers {_q('Server: ' + s.server)};")
    first = s.variants[0]
    lines += [f"        set ${name} {_q(value)};" for name, value in first.items()]
    # Every gate a rule reads is set (empty where the host has none of it).
    lines += [f'        set ${gate} "";' for gate in routes.GATES if gate not in first]
    rr = f"$lab_rr{len(s.variants)}"
    for letter, other in zip("bc", s.variants[1 : routes.MAX_VARIANTS], strict=False):
        lines.append(f"        if ({rr} = {letter}) {{")
        lines += [
            f"            set ${name} {_q(value)};"
            for name, value in other.items()
            if first.get(name) != value
        ]
        lines.append("        }")
    lines.append(f"        include {workdir / 'lab-rules.inc'};")
    lines.append(f"        include {workdir / (s.layout + '.inc')};")
    lines.append("    }")
    return "\n".join(lines)


def render(plan: Plan, workdir: Path, workers: int = 1, access_log: Path | None = None) -> str:
    """Write the include files and document roots under `workdir`; return nginx.conf's text.
    `access_log`: where to log one line per request (`<address> <status> "<request>"`, for
    the benchmark's request counts); off otherwise."""
    sites = routes.build_sites(plan, workdir)
    headers_more = HEADERS_MORE.exists()
    for layout in routes.all_layouts(workdir / "www" / "common").values():
        text = include_text(layout, headers_more)
        (workdir / f"{layout.name}.inc").write_text(text, encoding="utf-8")
    (workdir / "lab-rules.inc").write_text(rules_include(), encoding="utf-8")
    for sub in ("logs", "tmp"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    # Every listen socket takes a connection slot in each worker, on top of the clients.
    connections = len(sites) + 8192
    head = []
    if headers_more:
        head.append(f"load_module {HEADERS_MORE};")
    if os.geteuid() == 0:
        head.append("user root;")  # workers must read the 0700 working directory
    tmp = workdir / "tmp"
    types: dict[str, list[str]] = {}
    for ext, mime in routes.MIME_TYPES.items():
        types.setdefault(mime, []).append(ext)
    head += [
        "daemon off;",
        f"worker_processes {workers};",
        f"worker_rlimit_nofile {2 * connections + 1024};",
        f"pid {workdir / 'nginx.pid'};",
        f"error_log {workdir / 'logs' / 'error.log'} warn;",
        f"events {{ worker_connections {connections}; multi_accept on; }}",
        "http {",
        "    log_format lab '$server_addr $status \"$request\"';",
        f"    access_log {access_log} lab;" if access_log is not None else "    access_log off;",
        "    server_tokens off;",
        f"    client_body_temp_path {tmp / 'body'};",
        f"    proxy_temp_path {tmp / 'proxy'};",
        f"    fastcgi_temp_path {tmp / 'fastcgi'};",
        f"    uwsgi_temp_path {tmp / 'uwsgi'};",
        f"    scgi_temp_path {tmp / 'scgi'};",
        "    types {",
        *(f"        {mime} {' '.join(exts)};" for mime, exts in types.items()),
        "    }",
        f'    default_type "{routes.DEFAULT_TYPE}";',  # ";" is fine inside quotes
        "    charset_types text/html text/xml text/css;",
        f"    keepalive_timeout {routes.KEEPALIVE_SECONDS}s;",
        # Every connection a full handshake, as against thousands of distinct real servers.
        "    ssl_session_cache off;",
        "    ssl_session_tickets off;",
        f"    ssl_certificate_key {workdir / 'certs' / 'key.pem'};",
        _http_maps(),
    ]
    # With no served host the caller does not start nginx at all.
    blocks = [_server_block(s, plan.port, workdir, headers_more) for s in sites]
    return "\n".join([*head, *blocks, "}", ""])
