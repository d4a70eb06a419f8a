#!/usr/bin/env python3
"""Writes the watch-server container image as an OCI image layout, without a container
engine: one layer holding a static `tagcfg` binary and the CA bundle (the AWS SDK and the JWKS
fetch verify TLS against native roots), entrypoint `/tagcfg`, command `watch-server` (what
infra/watch-server.yaml runs), as user nobody. The layout is deterministic: the same binary
gives the same digest.

usage: oci-image.py BINARY ARCH OUT_DIR [TAG]      (ARCH: arm64 | x86_64)

Push it with skopeo (Debian's package), for example to ECR:
    skopeo copy oci:OUT_DIR:TAG docker://<account>.dkr.ecr.<region>.amazonaws.com/tagcfg-watch:TAG
"""
import gzip, hashlib, io, json, pathlib, shutil, sys, tarfile

CA_BUNDLE = pathlib.Path("/etc/ssl/certs/ca-certificates.crt")
OCI_ARCH = {"arm64": "arm64", "x86_64": "amd64"}


def layer_tar(binary: pathlib.Path) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add_dir(name, mode=0o755):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        def add_file(name, data, mode):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        add_file("tagcfg", binary.read_bytes(), 0o755)
        for d in ("etc", "etc/ssl", "etc/ssl/certs"):
            add_dir(d)
        add_file("etc/ssl/certs/ca-certificates.crt", CA_BUNDLE.read_bytes(), 0o644)
        add_dir("tmp", 0o1777)
    return out.getvalue()


class Layout:
    def __init__(self, root: pathlib.Path):
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True)

    def blob(self, data: bytes, media_type: str) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[2] not in OCI_ARCH:
        sys.exit(__doc__)
    binary, arch, out = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
    tag = sys.argv[4] if len(sys.argv) == 5 else "latest"
    shutil.rmtree(out, ignore_errors=True)
    layout = Layout(out)

    tar = layer_tar(binary)
    layer = layout.blob(gzip.compress(tar, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = layout.blob(canonical({
        "architecture": OCI_ARCH[arch],
        "os": "linux",
        "config": {
            "Entrypoint": ["/tagcfg"],
            "Cmd": ["watch-server"],
            "User": "65534:65534",
            "ExposedPorts": {"50051/tcp": {}},
            "Env": ["SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "TAGCFG_WATCH_ADDR=0.0.0.0:50051"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(tar).hexdigest()}"]},
    }), "application/vnd.oci.image.config.v1+json")
    manifest = layout.blob(canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    }), "application/vnd.oci.image.manifest.v1+json")
    manifest["platform"] = {"architecture": OCI_ARCH[arch], "os": "linux"}
    manifest["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(canonical({"schemaVersion": 2, "manifests": [manifest]}))
    print(f"{out}:{tag}  {manifest['digest']}  ({arch}, layer {layer['size'] / 1048576:.2f} MiB)")


main()
