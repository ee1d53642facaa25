"""HTTP at the edges of every surface: made-up methods in the metrics."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

REQUESTS = "rolecall_http_requests_total"


def request_samples(client: TestClient) -> list[dict[str, str]]:
    """The labels of every sample of the request counter on /metrics."""
    text = client.get("/metrics").text
    return [
        sample.labels
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS
    ]


def count(client: TestClient, **labels: str) -> float:
    text = client.get("/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == REQUESTS and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_made_up_methods_are_counted_as_other_and_add_no_series(client):
    """A method token is anything a client sends (``curl -X M$RANDOM``): labelled as it came,
    each added a series to /metrics, unauthenticated and without bound."""
    labels = {"method": "other", "route": "/healthz", "status": "405"}
    before = count(client, **labels)
    series_before = len(request_samples(client))

    for n in range(30):
        assert client.request(f"M{n}X", "/healthz").status_code == 405

    methods = {sample["method"] for sample in request_samples(client)}
    assert not {f"M{n}X" for n in range(30)} & methods
    assert count(client, **labels) == before + 30
    # Only the "other" series and /metrics' own GETs are new, whatever the methods were.
    assert len(request_samples(client)) - series_before <= 2


def test_standard_methods_keep_their_own_label(client):
    labels = {"method": "DELETE", "route": "/healthz", "status": "405"}
    before = count(client, **labels)

    client.delete("/healthz")

    assert count(client, **labels) == before + 1
