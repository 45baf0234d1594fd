"""A Path ending in `/` is a folder, as FMADIO reads it: files are `<name><suffix>` inside it
(with several interfaces `<interface>_<name><suffix>`), temporaries `..<start>.part`, and a
crash's leftovers are repaired there like anywhere else."""

from __future__ import annotations

import struct
from pathlib import Path

from lua_config_helpers import NAME

from pushcap.config.lua import load_targets_text
from pushcap.push import pcapfile
from pushcap.push.pcapfile import FolderPrefix, PcapWriter, finish_name, parse_part_name
from pushcap.push.repair import repair_leftovers
from pushcap.push.ship import make_shipper
from pushcap.supervisor.consumers import series_prefix


def target(path: str, mode: str = "File"):
    text = f'return {{ Target = {{ {{ Desc = "d", Mode = "{mode}", Path = "{path}" }} }} }}'
    return load_targets_text(text, NAME)[0]


def test_the_series_of_a_folder():
    assert series_prefix(target("out/push/"), "eth0", False) == FolderPrefix(Path("out/push"))
    assert series_prefix(target("out/push/"), "eth0", True) == Path("out/push/eth0")
    assert series_prefix(target("out/push/all"), "eth0", False) == Path("out/push/all")
    assert series_prefix(target("/"), "eth0", False) == FolderPrefix(Path("/"))
    assert str(FolderPrefix(Path("out/push"))) == "out/push/"


def test_names_and_temporaries_in_a_folder(tmp_path):
    prefix = FolderPrefix(tmp_path)
    part = pcapfile.part_path(prefix, 1616334655000000000)
    assert part.name == "..1616334655000000000.part"
    assert parse_part_name(part) == ("", 1616334655000000000)
    assert parse_part_name(tmp_path / ".1616334655.part") is None  # no base separator: not ours
    assert finish_name(prefix, "1616334655-1616334715", ".pcap").name == \
        "1616334655-1616334715.pcap"
    (tmp_path / "1616334655-1616334715.pcap").write_bytes(b"")
    assert finish_name(prefix, "1616334655-1616334715", ".pcap").name == \
        "1616334655-1616334715_2.pcap"


def test_a_folder_series_writes_and_repairs_its_files(tmp_path):
    folder_target = target(f"{tmp_path}/push/")
    shipper = make_shipper(folder_target, series_prefix(folder_target, "lo", False))
    assert shipper.describe() == f"{tmp_path}/push/*.pcap"
    crashed = pcapfile.part_path(shipper.part_prefix, 1616334715 * 10**9)
    crashed.parent.mkdir(parents=True)
    crashed.write_bytes(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1)
                        + struct.pack("<IIII", 1616334716, 0, 4, 4) + b"abcd")
    other = tmp_path / "push" / ".all.1616334715000000000.part"  # another series' temporary
    other.write_bytes(crashed.read_bytes())
    published = []
    repair_leftovers(shipper.part_prefix, "target=d",
                     lambda part, start, last: published.append(
                         shipper.deliver(part, f"{start // 10**9}")))
    assert [p.name for p in published] == ["1616334715.pcap"]
    assert other.exists()  # not this series'
    writer = PcapWriter.create(shipper.part_prefix, 1616334655 * 10**9, 1, 262144)
    writer.close()
    final = shipper.deliver(writer.part, "1616334655")
    assert final == tmp_path / "push" / "1616334655.pcap"


def test_an_rclone_folder_uploads_into_it(tmp_path):
    remote = target("s3:bucket/push/", mode="rclone")
    settings = {"spool_dir": str(tmp_path / "spool")}
    shipper = make_shipper(remote, series_prefix(remote, "lo", False), settings)
    assert shipper.dest_folder == "bucket/push/" and shipper.dest_base == ""
    assert shipper.describe().startswith("s3:bucket/push/*.pcap via rclone")
    assert shipper.part_prefix == FolderPrefix(tmp_path / "spool" / "d")
    several = make_shipper(remote, series_prefix(remote, "eth0", True), settings)
    assert several.describe().startswith("s3:bucket/push/eth0_*.pcap via rclone")
