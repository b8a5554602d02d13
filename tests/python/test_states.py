"""Info and Enum, as prometheus_client's, read back with its parsers."""

import pytest

from prometheus_proto import parse_delimited

from pyveda.telemetry import CollectorRegistry, Enum, Info

parser = pytest.importorskip("prometheus_client.parser")
om_parser = pytest.importorskip("prometheus_client.openmetrics.parser")


def samples(registry):
    return [(s.name, s.labels, s.value) for f in parser.text_string_to_metric_families(registry.generate_prometheus())
            for s in f.samples]


def test_info_is_one_sample_with_the_info_as_labels():
    registry = CollectorRegistry()
    build = Info("build", "Build information.", registry=registry)
    build.info({"version": "1.4.2", "commit": "9f2c1e0"})
    assert samples(registry) == [("build_info", {"version": "1.4.2", "commit": "9f2c1e0"}, 1.0)]
    (family,) = om_parser.text_string_to_metric_families(registry.generate_openmetrics())
    assert (family.name, family.type) == ("build", "info")
    build.info({"version": "1.5.0"})  # replaces the whole dict
    assert samples(registry) == [("build_info", {"version": "1.5.0"}, 1.0)]
    (proto,) = parse_delimited(registry.generate_protobuf())
    assert proto.name == "build_info" and proto.metric[0].gauge.value == 1


def test_labelled_info_and_its_errors():
    registry = CollectorRegistry()
    deployed = Info("deployed", "Deployments.", ["env"], namespace="shop", registry=registry)
    deployed.labels("prod").info({"version": "2"})
    deployed.labels(env="dev").info({"version": "3"})
    assert samples(registry) == [("shop_deployed_info", {"env": "prod", "version": "2"}, 1.0),
                                 ("shop_deployed_info", {"env": "dev", "version": "3"}, 1.0)]
    with pytest.raises(ValueError, match=r"Info 'shop_deployed': the info keys \['env'\] repeat the metric's label names"):
        deployed.labels("prod").info({"env": "x"})
    with pytest.raises(ValueError, match=r"Info 'shop_deployed' has label names \('env',\): call labels\(...\).info\(...\)"):
        deployed.info({"version": "1"})
    with pytest.raises(TypeError, match=r"Info 'shop_deployed': info\(\) takes a dict of str to str, got 'version': 1"):
        deployed.labels("prod").info({"version": 1})
    with pytest.raises(ValueError, match=r"Info 'x': an info metric cannot have a unit, got unit='bytes'"):
        Info("x", "", unit="bytes", registry=registry)
    with pytest.raises(ValueError, match=r"Info 'shop_deployed' expects 1 label value\(s\) for \('env',\), got 2"):
        deployed.labels("a", "b")
    deployed.remove("prod")
    assert [s[1]["env"] for s in samples(registry)] == ["dev"]
    deployed.clear()
    assert samples(registry) == []


def test_enum_exposes_every_state_with_the_current_one_at_1():
    registry = CollectorRegistry()
    state = Enum("worker_state", "What the worker does.", states=["idle", "busy", "draining"], registry=registry)
    assert samples(registry) == [("worker_state", {"worker_state": "idle"}, 1.0),
                                 ("worker_state", {"worker_state": "busy"}, 0.0),
                                 ("worker_state", {"worker_state": "draining"}, 0.0)]
    state.state("draining")
    assert [s[2] for s in samples(registry)] == [0.0, 0.0, 1.0]
    (family,) = om_parser.text_string_to_metric_families(registry.generate_openmetrics())
    assert family.type == "stateset"
    assert len(parse_delimited(registry.generate_protobuf())[0].metric) == 3
    with pytest.raises(ValueError, match=r"Enum 'worker_state': 'sleeping' is not one of its states \['idle', 'busy', 'draining'\]"):
        state.state("sleeping")


def test_labelled_enum_and_its_errors():
    registry = CollectorRegistry()
    link = Enum("link", "Link state.", ["port"], states=["down", "up"], registry=registry)
    link.labels("eth0").state("up")
    assert samples(registry) == [("link", {"port": "eth0", "link": "down"}, 0.0),
                                 ("link", {"port": "eth0", "link": "up"}, 1.0)]
    with pytest.raises(ValueError, match=r"Enum 'link' has label names \('port',\): call labels\(...\).state\(...\)"):
        link.state("up")
    link.labels("eth1")
    link.remove_by_labels({"port": "eth0"})
    assert {s[1]["port"] for s in samples(registry)} == {"eth1"}
    with pytest.raises(ValueError, match=r"Enum 'e': states must list the possible states"):
        Enum("e", "", registry=registry)
    with pytest.raises(ValueError, match=r"Enum 'e': states must differ from each other"):
        Enum("e", "", states=["a", "a"], registry=registry)
    with pytest.raises(ValueError, match=r"Enum 'e': a label name may not be the metric's name"):
        Enum("e", "", ["e"], states=["a"], registry=registry)


def test_unregistered_and_duplicate():
    registry = CollectorRegistry()
    Info("lonely", "Not registered.", registry=None).info({"a": "b"})
    assert registry.generate_prometheus() == ""
    Enum("mode", "Mode.", states=["a"], registry=registry)
    with pytest.raises(ValueError, match=r"Duplicated timeseries in CollectorRegistry: \['mode'\]"):
        Enum("mode", "Mode.", states=["a"], registry=registry)
