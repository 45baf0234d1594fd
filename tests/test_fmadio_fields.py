"""FMADIO's push_realtime.lua fields and forms (issue 18, item 1): each field FMADIO's firmware
or tooling writes loads, with its meaning or with one notice; the forms its documentation and
generator write load as FMADIO reads them; the Lua sandbox offers os.date/time/clock/getenv."""

from __future__ import annotations

import os
import threading
import time

import pytest
from lua_config_helpers import NAME, one_target

from pushcap.config.codec import Codec
from pushcap.config.desc_names import desc_file_name, log_value
from pushcap.config.lua import load_push_config_text, load_targets_text
from pushcap.config.model import ConfigError, PushMode


def loaded(**fields: str):
    """(target 2, the notices) of one_target(**fields)."""
    push = load_push_config_text(one_target(**fields), NAME)
    return push.targets[1], push.notices


# --- forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "codec"), [
    ('" gzip -c "', Codec("gzip")), ('"gzip -1 -c"', Codec("gzip", 1)),
    ('"zstd -c -T8"', Codec("zstd", None, 8)), ('"  lz4 -c -9"', Codec("lz4", 9)),
    ('""', None), ('" "', None),
])
def test_pipe_cmd_as_fmadio_writes_it(written, codec):
    target, _ = loaded(PipeCmd=written)
    assert target.pipe_cmd == codec


@pytest.mark.parametrize("written", ['""', '"  "', "nil"])
def test_an_empty_filter_takes_every_packet(written):
    target, _ = loaded(FilterBPF=written)
    assert target.filter_bpf is None
    assert loaded(FilterBPF='"  tcp "')[0].filter_bpf == "tcp"


def test_file_suffix_with_or_without_its_dot():
    assert loaded(FileSuffix='"pcap"')[0].file_suffix == ".pcap"
    assert loaded(FileSuffix='""')[0].file_suffix == ".pcap"
    target, notices = loaded(PipeCmd='"gzip -c"', FileSuffix='"pcap.gzip"')
    assert (target.file_suffix, notices) == (".pcap.gzip", ())


@pytest.mark.parametrize(("suffix", "codec"), [
    ('"pcap.gz"', "gzip"), ('".pcap.lz4"', "lz4"), ('".pcap.zst"', "zstd"),
    ('".pcap.zstd"', "zstd"),
])
def test_a_compressed_suffix_without_pipe_cmd_compresses_so(suffix, codec):
    """FMADIO's documentation: `FileSuffix = "pcap.gz"` alone, "writing a gzip compressed PCAP
    file". The name must not lie: the codec it names compresses, with a notice."""
    target, notices = loaded(FileSuffix=suffix)
    assert target.pipe_cmd == Codec(codec)
    assert len(notices) == 1 and "without a PipeCmd: files are compressed" in notices[0]


def test_split_size_is_read_as_split_byte_with_a_notice():
    target, notices = loaded(Split='"--split-size 1e9"')
    assert (target.split.kind.value, target.split.value) == ("byte", 10**9)
    assert notices == (f'{NAME}: target 2 "t2": Split "--split-size 1e9": read as --split-byte '
                       "(pcap_split itself knows only --split-byte)",)


@pytest.mark.parametrize("desc", ["port80 zstd", "Büro / NYC #1", "a.b_c-d", "x" * 200])
def test_a_desc_of_any_printable_text(desc):
    target, _ = loaded(Desc=f'"{desc}"')
    assert target.desc == desc
    assert set(target.desc_file_name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789._-ü")
    assert len(target.desc_file_name) <= 64


def test_the_desc_forms_for_files_and_logs():
    assert desc_file_name("port80 zstd") == "port80_zstd"
    assert desc_file_name(".hidden/../x") == "_hidden_.._x"
    assert desc_file_name("pcap-all") == "pcap-all"  # every Desc accepted before: unchanged
    assert log_value("pcap-all") == "pcap-all"
    assert log_value("port80 zstd") == '"port80 zstd"'
    assert log_value('a"b') == '"a\\"b"'


def test_a_path_ending_in_a_slash_is_a_folder():
    target, _ = loaded(Path='"out/push/"')
    assert target.folder and target.path == "out/push/"
    assert loaded(Mode='"rclone"', Path='"s3:bucket/push/"')[0].folder
    for field in ("Keep", "Index"):
        value = '"--keep-files 3"' if field == "Keep" else "true"
        with pytest.raises(ConfigError, match="needs a Path prefix"):
            load_targets_text(one_target(Path='"out/push/"', **{field: value}), NAME)


def test_curl_and_lxc_modes_name_what_to_use():
    with pytest.raises(ConfigError, match='CURL mode .*Mode = "rclone" with an FTP'):
        load_targets_text(one_target(Mode='"CURL"', Path='"ftp://h/x"'), NAME)
    with pytest.raises(ConfigError, match="LXC mode"):
        load_targets_text(one_target(Mode='"LXC"'), NAME)


# --- Lua: os.date, os.time, os.clock, os.getenv ------------------------------------------------


def test_os_date_builds_a_path_when_the_file_is_loaded(monkeypatch):
    monkeypatch.setenv("PUSH_SITE", "nyc")
    text = ('return { Target = { { Desc = "d", Mode = "File", '
            'Path = "out/" .. os.getenv("PUSH_SITE") .. os.date("/%Y%m%d/all"), '
            'Split = "--split-time " .. math.floor(60 + os.time() * 0) .. "e9", '
            'FileName = (os.clock() >= 0) and "--filename-epoch-sec" or "x" } } }')
    before = time.strftime("%Y%m%d")
    target = load_targets_text(text, NAME)[0]
    after = time.strftime("%Y%m%d")
    assert target.path in (f"out/nyc/{before}/all", f"out/nyc/{after}/all")
    assert target.split.value == 60 * 10**9
    unset = text.replace('os.getenv("PUSH_SITE")', 'tostring(os.getenv("NO_SUCH_VARIABLE_18"))')
    assert load_targets_text(unset, NAME)[0].path.startswith("out/nil/")


def test_os_date_follows_tz(monkeypatch):
    text = 'return { Target = { { Desc = "d", Mode = "File", Path = os.date("out/%H%z") } } }'
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    kolkata = load_targets_text(text, NAME)[0].path
    monkeypatch.setenv("TZ", "UTC")
    assert load_targets_text(text, NAME)[0].path.endswith("+0000")
    assert kolkata.endswith("+0530")


# --- FMADIO's fields: a meaning or one notice, never a refusal -------------------------------


def test_fields_without_a_meaning_give_one_notice_each():
    target, notices = loaded(StreamCat='"--ring-timeout-exit "', SplitCmd='"-Z fmadio"',
                             FilterFrame='"x"', RingName='"ring0"', Compress="true",
                             FollowStart="true")
    assert [n.split(": ")[2].split(" ")[0] for n in notices] == \
        ["FollowStart", "StreamCat", "SplitCmd", "FilterFrame", "RingName", "Compress"]
    assert target.notices == notices


def test_empty_or_false_fmadio_fields_say_nothing():
    _, notices = loaded(StreamCat='""', SplitCmd='""', FilterFrame='""', FollowStart="false",
                        Chunked="false")
    assert notices == ()
    assert loaded(Chunked="true")[1] == ()  # pushcap always works a batch at a time


def test_top_level_fields():
    text = ('return { FollowStart = true, TimeoutRing = 30e9, Decap = false, Target = { '
            '{ Desc = "a", Mode = "File", Path = "out/a", FilterBPF = "tcp" } } }')
    push = load_push_config_text(text, NAME)
    assert push.targets[0].decap is False
    assert [n.split(": ")[1].split(" ")[0] for n in push.notices] == \
        ["Config.FollowStart", "Config.TimeoutRing"]
    with pytest.raises(ConfigError, match="unknown top-level field Decapp"):
        load_targets_text(text.replace("Decap", "Decapp"), NAME)


def test_cpu_pins_when_this_host_has_it():
    cpus = sorted(os.sched_getaffinity(0))
    assert loaded(CPU=str(cpus[0]))[0].cpu == (cpus[0],)
    assert loaded(CPU=f'"{cpus[0]},{cpus[-1]}"')[0].cpu == tuple(dict.fromkeys((cpus[0],
                                                                                cpus[-1])))
    target, notices = loaded(CPU="4096")
    assert target.cpu is None and "this host has no CPU 4096" in notices[0]
    with pytest.raises(ConfigError, match="a CPU number"):
        load_targets_text(one_target(CPU="1.5"), NAME)


def test_script_new_is_split_without_a_shell(tmp_path):
    script = tmp_path / "hook"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    target, notices = loaded(ScriptNew=f'"{script} 10 \'two words\' $HOME;x"')
    assert target.script_new == (str(script), "10", "two words", "$HOME;x")
    assert notices == ()
    target, notices = loaded(ScriptNew='"/nonexistent/hook 10"')
    assert target.script_new == ("/nonexistent/hook", "10")
    assert "is not an executable here" in notices[0]


def test_flows_targets_take_no_decap_or_script():
    fields = {"Mode": '"flows"', "Path": '"udp://127.0.0.1:9000"'}
    cpu = min(os.sched_getaffinity(0))
    target, notices = loaded(**fields, Decap="true", ScriptNew='"/bin/true"', CPU=str(cpu))
    assert target.mode is PushMode.FLOWS and not target.decap and target.script_new is None
    assert target.cpu == (cpu,)  # its lane is pinned like any other
    assert len(notices) == 2


def test_each_notice_is_in_the_push_config_once():
    text = one_target(StreamCat='"x"').replace('Path = "out/push/t1"',
                                               'Path = "out/push/t1", StreamCat = "y"')
    push = load_push_config_text(text, NAME)
    assert len(push.notices) == 2 == len(set(push.notices))


# --- what the fields do -----------------------------------------------------------------------


def test_cpu_pins_the_lanes_thread_and_a_reload_unpins_it():
    from pushcap.supervisor.target_lane import TargetLane

    class Slot:
        def __init__(self, cpu):
            self.consumer = type("C", (), {"target": type("T", (), {"cpu": cpu})()})()

    class Slots:
        slots = [Slot((0,))]

    lane = TargetLane.__new__(TargetLane)
    lane.desc, lane.interface, lane.slots = "t", "lo", Slots()
    lane._pinned, lane._unpinned_cpus = None, None
    seen = []

    def run() -> None:
        lane.pin_to_target()
        seen.append(os.sched_getaffinity(threading.get_native_id()))
        Slots.slots = [Slot(None)]
        lane.pin_to_target()
        seen.append(os.sched_getaffinity(threading.get_native_id()))

    before = os.sched_getaffinity(0)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [{0}, before]
    assert os.sched_getaffinity(0) == before  # only the lane's own thread was pinned


def test_script_new_runs_once_at_a_time_and_is_killed_at_its_timeout(tmp_path):
    from pushcap.push.script_new import ScriptNew

    marker = tmp_path / "runs"
    script = tmp_path / "hook"
    script.write_text(f'#!/bin/sh\necho "$1" >> {marker}\nsleep "$2"\n')
    script.chmod(0o755)
    runner = ScriptNew((str(script), "a b", "5"), "target=t", timeout_s=0.5)
    started = time.monotonic()
    runner.file_started()
    runner.file_started()  # the first still sleeps: skipped, not queued
    assert time.monotonic() - started < 0.5  # the packet path never waits
    runner.close()
    assert (runner.runs, runner.skipped, runner.failures) == (1, 1, 1)  # killed at 0.5 s
    assert marker.read_text() == "a b\n"
    quick = ScriptNew((str(script), "c", "0"), "target=t")
    quick.file_started()
    quick.close()
    assert (quick.runs, quick.failures) == (1, 0)
