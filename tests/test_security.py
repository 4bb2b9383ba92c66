"""Tokens (read-write and read-only) and TLS, against real servers on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import trainboard
from trainboard.errors import TrainboardError
from trainboard.v1 import trainboard_pb2 as pb
from trainboard.v1 import trainboard_pb2_grpc as pb_grpc
from trainboard_server.auth import TokensFileError, load_tokens, parse_tokens
from trainboard_server.server import ServerHandle, TlsCredentials, make_server
from trainboard_server.sql_store import SqlStore

WRITE_TOKEN = "write-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"


@pytest.fixture
def tokens_file(tmp_path: Path) -> Path:
    path = tmp_path / "tokens"
    path.write_text(f"# team tokens\nwrite {WRITE_TOKEN}\n\nread {READ_TOKEN}\n")
    return path


def _serve(store: SqlStore, **kwargs: Any) -> ServerHandle:
    handle = make_server(store, host="127.0.0.1", port=0, **kwargs)
    handle.start()
    return handle


@pytest.fixture
def secured(tmp_path: Path, tokens_file: Path) -> Iterator[str]:
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'auth.db'}")
    handle = _serve(store, tokens=load_tokens(tokens_file))
    yield handle.address
    handle.stop(grace=None)
    store.close()


def _all_rpcs(channel: grpc.Channel) -> list[tuple[str, Any, Any]]:
    write = pb_grpc.WriteServiceStub(channel)
    read = pb_grpc.ReadServiceStub(channel)
    return [
        ("StartRun", write.StartRun, pb.StartRunRequest(experiment="e", run="r", wall_time=1.0)),
        ("WriteBatch", write.WriteBatch, pb.WriteBatchRequest(client_id="c", sequence=1)),
        ("FinishRun", write.FinishRun, pb.FinishRunRequest(run_id=1, status="finished")),
        ("SetGraph", write.SetGraph, pb.SetGraphRequest(run_id=1)),
        ("DeleteRun", write.DeleteRun, pb.DeleteRunRequest(run_id=1)),
        ("DeleteExperiment", write.DeleteExperiment, pb.DeleteExperimentRequest(experiment="e")),
        ("RenameRun", write.RenameRun, pb.RenameRunRequest(run_id=1, new_name="n")),
        ("SetRunTags", write.SetRunTags, pb.SetRunTagsRequest(run_id=1, tags=["t"])),
        ("Heartbeat", write.Heartbeat, pb.HeartbeatRequest(run_id=1)),
        ("ListExperiments", read.ListExperiments, pb.ListExperimentsRequest()),
        ("ListRuns", read.ListRuns, pb.ListRunsRequest(experiment="e")),
        ("ListTags", read.ListTags, pb.ListTagsRequest(run_id=1)),
        ("ReadScalars", read.ReadScalars, pb.ReadScalarsRequest(run_ids=[1], tags=["a"])),
        ("ReadHistograms", read.ReadHistograms, pb.ReadHistogramsRequest(run_ids=[1], tags=["a"])),
        ("GetGraph", read.GetGraph, pb.GetGraphRequest(run_id=1)),
    ]


@pytest.mark.parametrize("metadata", [None, (("authorization", "Bearer not-a-valid-token"),)])
def test_without_a_valid_token_every_rpc_but_health_is_unauthenticated(
    secured: str, metadata: Any
) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(secured) as channel:
        for name, call, request in _all_rpcs(channel):
            with pytest.raises(grpc.RpcError) as info:
                call(request, timeout=10, metadata=metadata)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert "token" in info.value.details()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_read_only_token_may_read_but_not_write(secured: str) -> None:
    metadata = (("authorization", f"Bearer {READ_TOKEN}"),)
    with grpc.insecure_channel(secured) as channel:
        for name, call, request in _all_rpcs(channel):
            if name in pb.DESCRIPTOR.services_by_name["WriteService"].methods_by_name:
                with pytest.raises(grpc.RpcError) as info:
                    call(request, timeout=10, metadata=metadata)
                assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
            elif name == "ListExperiments":
                assert list(call(request, timeout=10, metadata=metadata).names) == []


def test_the_sdk_sends_tokens_from_arguments_and_the_environment(
    secured: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trainboard.Client("secure", "r1", server=secured, token=WRITE_TOKEN) as client:
        client.log_scalar("loss", 0.5, step=0)
        run_id = client.run_id
    assert trainboard.Reader(secured, token=READ_TOKEN).scalars(run_id, "loss").values[0] == 0.5
    monkeypatch.setenv("TRAINBOARD_TOKEN", WRITE_TOKEN)
    with trainboard.Client("secure", "r2", server=secured) as client:
        client.log_scalar("loss", 0.25, step=0)
    assert [r.name for r in trainboard.Reader(secured).runs("secure")] == ["r1", "r2"]


def test_a_trainer_without_a_token_keeps_training(secured: str) -> None:
    client = trainboard.Client("secure", "no-token", server=secured, timeout=10)
    for step in range(100):
        client.log_scalar("loss", 1.0, step=step)  # never raises into the loop
    with pytest.raises(TrainboardError, match="token"):
        _ = client.run_id
    assert client.close(timeout=10) is False
    with pytest.raises(trainboard.Unauthenticated):
        trainboard.Reader(secured).experiments()


def test_a_read_only_token_cannot_log(secured: str) -> None:
    client = trainboard.Client("secure", "reader", server=secured, token=READ_TOKEN, timeout=10)
    client.log_scalar("loss", 1.0, step=0)
    with pytest.raises(TrainboardError, match="may read but not write"):
        _ = client.run_id
    assert client.close(timeout=10) is False


def test_tokens_are_never_logged(
    secured: str, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    with trainboard.Client("secure", "logs", server=secured, token=WRITE_TOKEN) as client:
        client.log_scalar("loss", 1.0, step=0)
    bad = trainboard.Client("secure", "bad", server=secured, token=READ_TOKEN + "x", timeout=5)
    bad.close(timeout=5)
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert WRITE_TOKEN not in text
        assert READ_TOKEN not in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("admin sometoken-0123456789\n", "line 1: expected 'write TOKEN' or 'read TOKEN'"),
        ("write\n", "line 1: expected"),
        ("# only a comment\n", "holds no tokens"),
        ("read short\n", "at least 16 characters"),
    ],
)
def test_a_malformed_tokens_file_is_refused_without_showing_tokens(text: str, message: str) -> None:
    with pytest.raises(TokensFileError, match=message) as info:
        parse_tokens(text)
    assert "sometoken" not in str(info.value)


def test_a_missing_tokens_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TokensFileError, match="cannot read tokens file"):
        load_tokens(tmp_path / "nope")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "server.crt", tmp_path / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_with_a_self_signed_certificate(
    tmp_path: Path, tokens_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = _self_signed(tmp_path)
    store = SqlStore.from_url(f"sqlite:///{tmp_path / 'tls.db'}")
    handle = _serve(
        store,
        tokens=load_tokens(tokens_file),
        tls=TlsCredentials.from_files(str(cert), str(key)),
    )
    try:
        with trainboard.Client(
            "tls", "r", server=handle.address, token=WRITE_TOKEN, tls_root_cert=str(cert)
        ) as client:
            client.log_scalar("loss", 0.5, step=0)
            run_id = client.run_id
        monkeypatch.setenv("TRAINBOARD_TLS_ROOT_CERT", str(cert))
        reader = trainboard.Reader(handle.address, token=READ_TOKEN)
        assert reader.scalars(run_id, "loss").values.tolist() == [0.5]
        monkeypatch.delenv("TRAINBOARD_TLS_ROOT_CERT")
        plain = trainboard.Reader(handle.address, token=READ_TOKEN, timeout=3)
        with pytest.raises(trainboard.Unavailable):
            plain.experiments()
    finally:
        handle.stop(grace=None)
        store.close()


def test_an_unreadable_root_certificate_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read TLS root certificate"):
        trainboard.Reader("127.0.0.1:1", tls_root_cert=str(tmp_path / "missing.pem"))


def test_the_server_command_takes_a_tokens_file_from_the_environment(
    tmp_path: Path, tokens_file: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    from server_process import free_port, wait_healthy

    port = free_port()
    env = {**os.environ, "TRAINBOARD_TOKENS_FILE": str(tokens_file)}
    command = [sys.executable, "-m", "trainboard", "server", "--port", str(port)]
    command += ["--db", f"sqlite:///{tmp_path / 'cli.db'}"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        address = f"127.0.0.1:{port}"
        assert wait_healthy(address)
        with pytest.raises(trainboard.Unauthenticated):
            trainboard.Reader(address).experiments()
        assert trainboard.Reader(address, token=READ_TOKEN).experiments() == []
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert "tokens required (2 in" in output
    assert WRITE_TOKEN not in output
    assert READ_TOKEN not in output


def test_the_server_command_refuses_a_bad_tokens_file_or_half_a_tls_pair(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "tokens"
    bad.write_text("owner secret-secret-secret\n")
    base = [sys.executable, "-m", "trainboard", "server", "--db", f"sqlite:///{tmp_path / 'x.db'}"]
    out = subprocess.run([*base, "--tokens-file", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "line 1" in out.stderr
    assert "secret-secret" not in out.stderr
    out = subprocess.run([*base, "--tls-cert", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "--tls-cert and --tls-key go together" in out.stderr
