#!/usr/bin/env python3
"""Checks what `sam build` left in .aws-sam/build: for every Rust function of the built
template, a `bootstrap` that is an executable ELF for the requested architecture, needs no
glibc newer than provided.al2023's, and that starts: it finishes its init and polls the
(stub) Lambda Runtime API for its first event. An arm64 bootstrap on an x86_64 machine runs
under qemu-user with Debian's aarch64 glibc (qemu-user, libc6-arm64-cross).

usage: check-bootstraps.py ARCHITECTURE      (arm64 | x86_64)
"""
import pathlib, platform, re, shutil, sys

import yaml  # comes with the SAM CLI, which runs this script's venv

from lambda_stub import time_to_ready

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUILD = ROOT / ".aws-sam" / "build"
ELF_MACHINE = {"x86_64": 0x3E, "arm64": 0xB7}
AL2023_GLIBC = (2, 34)
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
# The least each binary needs to finish its init; nothing is contacted before the first event.
START_ENV = {
    "config-api": {"TAGCFG_TABLE": "tagcfg-config", "TAGCFG_COGNITO_USER_POOL_ID": "us-east-1_Check",
                   "TAGCFG_AUDIENCES": "check-client"},
    "stream-publisher": {"TAGCFG_EVENT_BUS": "tagcfg"},
    "cache-refresher": {"TAGCFG_TABLE": "tagcfg-config", "TAGCFG_WATCH_ENDPOINTS": "http://127.0.0.1:1",
                        "TAGCFG_SERVICE_SECRET": "check-service-secret-0123456789abcdef"},
}


class AnyTag(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsics (!Ref, !GetAtt, ...) as plain values."""


AnyTag.add_multi_constructor("!", lambda loader, suffix, node: None)


def rust_functions(template):
    for name, resource in template["Resources"].items():
        metadata = resource.get("Metadata") or {}
        if resource["Type"] == "AWS::Serverless::Function" and metadata.get("BuildMethod") == "rust-cargolambda":
            yield name, metadata["BuildProperties"]["Binary"]


def runner_for(arch):
    if platform.machine() in (arch, {"arm64": "aarch64"}.get(arch)):
        return ()
    if arch == "arm64" and pathlib.Path(AARCH64_SYSROOT).is_dir() and shutil.which("qemu-aarch64"):
        return ("qemu-aarch64", "-L", AARCH64_SYSROOT)
    sys.exit(f"cannot start {arch} binaries on {platform.machine()}: install qemu-user and libc6-arm64-cross")


def check(name, binary_name, arch):
    bootstrap = BUILD / name / "bootstrap"
    if not bootstrap.is_file():
        return f"{name}: no {bootstrap.relative_to(ROOT)}"
    data = bootstrap.read_bytes()
    if data[:4] != b"\x7fELF":
        return f"{name}: bootstrap is not an ELF executable"
    machine = int.from_bytes(data[18:20], "little")
    if machine != ELF_MACHINE[arch]:
        return f"{name}: bootstrap is built for ELF machine {machine:#x}, not {arch}"
    needed = max((tuple(map(int, v.split(b"."))) for v in re.findall(rb"GLIBC_(2\.\d+)", data)), default=(2, 0))
    if needed > AL2023_GLIBC:
        return f"{name}: bootstrap needs glibc {needed}, provided.al2023 has {AL2023_GLIBC}"
    line = f"{name:24} {binary_name:17} {arch:7} {len(data) / 1048576:6.2f} MiB  glibc >= {'.'.join(map(str, needed))}"
    runner = runner_for(arch)
    try:
        ms = time_to_ready(str(bootstrap), START_ENV[binary_name], timeout=30, runner=runner)
    except RuntimeError as e:
        return f"{name}: {e}"
    print(f"{line}  starts: init {ms:.1f} ms{' under qemu' if runner else ''}")
    return None


def main():
    arch = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
    template = yaml.load((BUILD / "template.yaml").read_text(), Loader=AnyTag)
    functions = list(rust_functions(template))
    if not functions:
        sys.exit("the built template has no rust-cargolambda function")
    errors = [e for e in (check(name, binary, arch) for name, binary in functions) if e]
    if errors:
        sys.exit("check-bootstraps: " + "\n  ".join(errors))


main()
