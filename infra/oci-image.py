#!/usr/bin/env python3
"""Builds a Dockerfile into an OCI image layout, without a container engine.

usage: oci-image.py DOCKERFILE CONTEXT ARCH OUT_DIR [TAG]      (ARCH: arm64 | x86_64)

The recipe is the Dockerfile itself (crates/watch-server/Dockerfile), so the image built
here and one built by `docker build` with the same context cannot drift. Only what an image
of one static binary needs is understood: FROM scratch, COPY <file> <absolute path>,
ENV K=V, USER, EXPOSE, ENTRYPOINT and CMD in JSON form; anything else is refused. All
COPYs go into one layer. The layout is deterministic: the same inputs give the same digest.

Push it with skopeo (Debian's package), for example to ECR:
    skopeo copy oci:OUT_DIR:TAG docker://<account>.dkr.ecr.<region>.amazonaws.com/tagcfg-watch:TAG
"""
import gzip, hashlib, io, json, pathlib, shutil, sys, tarfile

OCI_ARCH = {"arm64": "arm64", "x86_64": "amd64"}


def instructions(dockerfile: pathlib.Path):
    """(INSTRUCTION, argument text) per line, comments and blank lines skipped."""
    for number, line in enumerate(dockerfile.read_text().splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            yield number, word.upper(), rest.strip()


def recipe(dockerfile: pathlib.Path):
    files, config = [], {"Env": [], "ExposedPorts": {}}
    for number, word, rest in instructions(dockerfile):
        where = f"{dockerfile}:{number}"
        if word == "FROM":
            if rest != "scratch":
                sys.exit(f"{where}: only FROM scratch is supported, not {rest!r}")
        elif word == "COPY":
            parts = rest.split()
            if len(parts) != 2 or not parts[1].startswith("/"):
                sys.exit(f"{where}: COPY takes one source file and an absolute destination")
            files.append((parts[0], parts[1].lstrip("/")))
        elif word == "ENV":
            if "=" not in rest:
                sys.exit(f"{where}: ENV takes KEY=value")
            config["Env"].append(rest)
        elif word == "USER":
            config["User"] = rest
        elif word == "EXPOSE":
            config["ExposedPorts"][rest if "/" in rest else f"{rest}/tcp"] = {}
        elif word in ("ENTRYPOINT", "CMD"):
            value = json.loads(rest)
            config["Entrypoint" if word == "ENTRYPOINT" else "Cmd"] = value
        else:
            sys.exit(f"{where}: {word} is not supported by this builder")
    return files, config


def layer_tar(context: pathlib.Path, files) -> bytes:
    out = io.BytesIO()
    made = set()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for source, dest in files:
            parts = dest.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in made:
                    made.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            path = context / source
            data = path.read_bytes()
            info = tarfile.TarInfo(dest)
            info.size = len(data)
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            tar.addfile(info, io.BytesIO(data))
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
    if len(sys.argv) not in (5, 6) or sys.argv[3] not in OCI_ARCH:
        sys.exit(__doc__)
    dockerfile, context = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    arch, out = sys.argv[3], pathlib.Path(sys.argv[4])
    tag = sys.argv[5] if len(sys.argv) == 6 else "latest"
    files, image_config = recipe(dockerfile)
    shutil.rmtree(out, ignore_errors=True)
    layout = Layout(out)

    tar = layer_tar(context, files)
    layer = layout.blob(gzip.compress(tar, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = layout.blob(canonical({
        "architecture": OCI_ARCH[arch],
        "os": "linux",
        "config": image_config,
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
