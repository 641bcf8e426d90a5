"""Every command sequence of README.md, read from the README itself and run as written in a
temporary folder, on the lab and loopback, through a shell with pipes: the quick start's
demo and the web interface (start, fetch a page, stop), `assess` with a pipe, the census,
the sharded census (scan, ingest, enrich with a constituency, report by sector), the
census -> notify (dry run, then sent to a test SMTP server) -> rescan -> remediation cycle,
and hostcheck.  What a test must change to run a command here (lab flags, free ports, the
test SMTP server, the fixture folder) is added by `adapt`, and nothing else; a README block
that changes breaks its test until the test runs it again.

Left to other tests: the Celery census (tests/census, needs a broker) and `exwatch.toml`
(tests/cli/test_config.py)."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from exwatch.lab import Lab
from tests.lab.running import free_port
from tests.notify.pki import TestCA
from tests.notify.smtpd import SmtpServer, smtp_server
from tests.report.test_census import _lab_geo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent  # the venv's bin: `exwatch` as the README types it
KAPE = ROOT / "tests" / "hostcheck" / "fixtures" / "kape"


def blocks() -> list[list[str]]:
    """The README's console blocks as lists of commands (continuations joined, comments
    and output lines left out)."""
    out = []
    text = README.read_text("utf-8")
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        commands: list[str] = []
        open_line = False
        for line in body.splitlines():
            if line.startswith("$ "):
                commands.append(line[2:])
            elif open_line:
                commands[-1] += " " + line.strip()
            else:
                continue
            open_line = commands[-1].endswith("\\")
            if open_line:
                commands[-1] = commands[-1][:-1].rstrip()
        out.append([re.sub(r"\s+#\s.*$", "", c).strip() for c in commands])
    return out


def block(first: str) -> list[str]:
    found = [b for b in blocks() if b and b[0].startswith(first)]
    assert len(found) == 1, f"README: no single block starting {first!r}"
    return found[0]


@dataclass
class Shell:
    """Runs README commands one by one in a folder, as a user's shell would."""

    cwd: Path
    env: dict[str, str]
    lab_port: int | None = None
    smtp: SmtpServer | None = None
    ran: list[str] = field(default_factory=list)

    def adapt(self, command: str) -> str:
        command = command.replace("/cases/exch01-kape/", shlex.quote(str(KAPE)))
        if _operators(command):
            return command  # shell syntax kept as typed; nothing else to add to these
        words = shlex.split(command)
        if words[:2] == ["exwatch", "scan"]:
            assert self.lab_port is not None
            words += ["--allow-private", "--port", str(self.lab_port), "--timeout", "2", "-q"]
        elif words[:2] == ["exwatch", "demo"]:
            words += ["--hosts", "60", "--port", str(free_port()), "-q"]
        if "--smtp-host" in words:
            assert self.smtp is not None
            at = words.index("--smtp-host")
            words[at : at + 2] = self.smtp.args()
        return shlex.join(words)

    def __call__(
        self, command: str, ok: tuple[int, ...] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        if command.startswith("export "):
            for pair in shlex.split(command)[1:]:
                key, _, value = pair.partition("=")
                self.env[key] = value
            self.ran.append(command)
            return subprocess.CompletedProcess(command, 0, "", "")
        adapted = self.adapt(command)
        # Never a real name to resolve: the README's SMTP host must have been replaced.
        assert "smtp.cert.be" not in adapted, adapted
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", adapted], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode in ok, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr, done.stderr
        self.ran.append(command)
        return done


def _operators(command: str) -> bool:
    """Whether the command uses a pipe or a redirection outside quotes."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    return any(token and set(token) <= set("|<>&;") for token in lexer)


def _shell(folder: Path) -> Shell:
    env = _lab_geo(folder / "xdg")
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    return Shell(folder, env)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(hosts=120, port=free_port(), seed=11, workdir=tmp_path_factory.mktemp("lab")) as lab:
        yield lab


def _census_files(lab: Lab, folder: Path) -> None:
    hosts = sorted(lab.ground_truth, key=ipaddress.ip_address)
    (folder / "targets.txt").write_text("\n".join(lab.cidr) + "\n")
    (folder / "blocklist.txt").write_text(f"# asked not to be scanned\n{hosts[5]}/32\n")
    net = ipaddress.ip_network(f"{hosts[0]}/26", strict=False)
    (folder / "be-constituency.csv").write_text(
        f"match,organisation,sector,country\n{net},Gemeente Lab,municipality,BE\n"
    )
    (folder / "be.csv").write_text(
        "match,organisation,sector,country,contact,language\n"
        f"{net},Gemeente Lab,municipality,BE,ict@lab.example,nl\n"
    )
    (folder / "contacts.csv").write_text(
        f"match,addresses,organisation,language\n{lab.cidr[0]},soc@lab.example,Lab Net,en\n"
    )


def test_quick_start_demo_and_the_web_interface(tmp_path: Path) -> None:
    shell = _shell(tmp_path)
    quick = re.findall(r"```bash\n(.*?)\n```", README.read_text("utf-8"), re.S)[0]
    demo = quick.split("&&")[-1].strip()
    assert demo == ".venv/bin/exwatch demo"  # installed here already: the venv's exwatch
    web = block("exwatch demo")
    assert web[0] == "exwatch demo"
    shell(web[0])
    assert (tmp_path / "exwatch-demo" / "demo.duckdb").is_file()
    serve = shlex.split(web[1])
    assert serve[:2] == ["exwatch", "serve"]
    port = free_port()
    proc = subprocess.Popen(
        [*serve, "--port", str(port)], cwd=tmp_path, env=shell.env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline, page = time.monotonic() + 60, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode("utf-8")
                break
            except OSError:
                time.sleep(0.2)
        assert "Exchange servers" in page, "the server did not answer"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, -15), err  # stopped cleanly by SIGTERM
    assert "Traceback" not in err


def test_assess_with_a_pipe(tmp_path: Path) -> None:
    shell = _shell(tmp_path)
    steps = block("exwatch assess")
    (tmp_path / "hosts.csv").write_text("15.1.2176.9,mail.example\n15.2.1118.7,owa.example\n")
    one = json.loads(shell(steps[0]).stdout)
    assert (one["build"], one["cu"]) == ("15.1.2176.9", "CU19")
    lines = shell(steps[1]).stdout.splitlines()
    assert [json.loads(line)["build"] for line in lines] == ["15.1.2176.9", "15.2.1118.7"]


def test_census_and_sharded_census(lab: Lab, tmp_path: Path) -> None:
    shell = _shell(tmp_path)
    shell.lab_port = lab.port
    _census_files(lab, tmp_path)
    for command in block("exwatch scan -l targets.txt --exclude blocklist.txt --rate 2000"):
        shell(command)
    assert "municipality" in (tmp_path / "report.html").read_text("utf-8")
    assert any(p.name.endswith("-scan_exchange-be.csv") for p in (tmp_path / "out").iterdir())
    for command in block("exwatch report --db census.duckdb --by months"):
        shell(command)
    # The sharded census, into a store of its own.
    (tmp_path / "census.duckdb").unlink()
    steps = block("exwatch scan -l targets.txt --exclude blocklist.txt --rate 1000 --shard 1/2")
    assert any(s.startswith("exwatch enrich") and "--constituency" in s for s in steps)
    outputs = [shell(s).stdout for s in steps]
    by_sector = outputs[[s.endswith("--by sector") for s in steps].index(True)]
    assert "municipality" in by_sector
    assert "2/2" in outputs[-1]


def test_notify_cycle(lab: Lab, tmp_path: Path, test_ca: TestCA) -> None:
    shell = _shell(tmp_path)
    shell.lab_port = lab.port
    _census_files(lab, tmp_path)
    steps = block("exwatch scan -l targets.txt --exclude blocklist.txt --db census.duckdb")
    with smtp_server(tmp_path, test_ca, login=("cert", "...")) as server:
        shell.smtp = server
        for command in steps:
            shell(command)
        received = server.received()
    assert (tmp_path / "review" / "index.json").is_file()
    assert list((tmp_path / "review" / "messages").glob("*.eml"))
    sent = json.loads((tmp_path / "sent" / "index.json").read_text("utf-8"))
    again = json.loads((tmp_path / "sent-2" / "index.json").read_text("utf-8"))
    assert "ict@lab.example" in {r.rcpt_tos[0] for r in received}
    assert len(received) == len(sent["messages"]) > 0
    assert again["messages"] == []  # after the rescan, nothing is sent twice
    assert any(s.endswith("--remediation") for s in shell.ran)


def test_hostcheck(tmp_path: Path) -> None:
    shell = _shell(tmp_path)
    steps = block("exwatch hostcheck")
    shell(steps[0], ok=(0, 1))  # 1: findings
    assert "<html" in (tmp_path / "exch01.html").read_text("utf-8").lower()
    shell(steps[1], ok=(0, 1))
    found = json.loads((tmp_path / "findings.json").read_text("utf-8"))
    assert found["root"]
