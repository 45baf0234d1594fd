"""`pushcap check`: load the configuration as `run` would, without capturing or writing
anything, and show each target's destination, so a mistake shows before a daemon starts."""

from __future__ import annotations

from pushcap.cli import _config_args, _imported, _load

TYPE_CHECKING = False  # typing's flag without importing typing: start-up (issue 15)
if TYPE_CHECKING:
    from pushcap.config.model import DaemonConfig, TargetConfig


def _destination(target: TargetConfig, config: DaemonConfig, names: tuple[str, ...],
                 probe: bool) -> str:
    from pushcap.config.model import ConfigError, PushMode
    from pushcap.push.ship import make_shipper
    from pushcap.supervisor.consumers import series_prefix

    if target.mode is PushMode.FLOWS:
        packed = ", packed" if target.pack else ""
        ranges = target.datadog_ranges
        datadog = "" if ranges is None else \
            f", Datadog ranges {ranges.path} ({ranges.prefixes()} prefixes)"
        return f"{target.path} every {target.interval_s:g} s{packed}{datadog}"
    if target.mode is PushMode.RCLONE:
        from pushcap.push.rclone_remote import check_remote

        try:
            check_remote(target.path, config.rclone, probe)
        except ConfigError as exc:
            raise ConfigError(f'target {target.index} "{target.desc}": Path: {exc}') from exc
    prefix = series_prefix(target, names[0] if len(names) == 1 else "<iface>", len(names) > 1)
    return make_shipper(target, prefix, config.rclone).describe()


def cmd_check(args) -> int:
    from pushcap.config.model import PushMode
    from pushcap.config.pcapdaemon import check_local_dir
    from pushcap.supervisor.consumers import interfaces_of

    _imported()
    config, push = _load(args)
    targets = push.targets
    check_local_dir(config.trigger, config.source_file)  # reads the disk, creates nothing
    _check_devices(config)
    rows = [("#", "Desc", "Mode", "Interfaces", "Destination", "Split", "FileName", "FilterBPF")]
    for t in targets:
        names = interfaces_of(t, config)
        flows = t.mode is PushMode.FLOWS
        rows.append((str(t.index), t.desc, t.mode.value, ",".join(names),
                     _destination(t, config, names, args.probe),
                     "-" if flows else t.split.describe(), "-" if flows else t.naming.describe(),
                     _filter_text(t)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    ifaces = ", ".join(f"{i.name}" + (f" ({'/'.join(i.aliases)})" if i.aliases else "")
                       for i in config.interfaces)
    print(f"\nnode {config.node_name}; interfaces {ifaces}; ring {config.ring.max_seconds:g} s / "
          f"{config.ring.max_bytes} B per interface")
    for notice in (*push.notices, *config.trigger.notices):  # accepted, without a meaning
        print(f"notice: {notice}")
    print(f"OK: {args.lua} ({len(targets)} targets) and {args.config}")
    return 0


def _filter_text(target: TargetConfig) -> str:
    """The FilterBPF column: the filter, and whether it sees decapsulated packets (Decap)."""
    if target.filter_bpf is None:
        return "(all packets)"
    return f"{target.filter_bpf} (decapsulated)" if target.decap else target.filter_bpf


def _check_devices(config) -> None:
    """`run` cannot start without each interface: say so now, with what there is instead."""
    from pushcap.capture.live import capture_devices
    from pushcap.config.model import ConfigError

    devices = capture_devices()
    if devices is None:
        return
    missing = [i.name for i in config.interfaces if i.name not in devices]
    if missing:
        raise ConfigError(f"{config.source_file}: [[interface]] {', '.join(missing)}: no such "
                          f"capture device on this host (libpcap has: {', '.join(devices)})")


def add_check_parser(sub) -> None:
    p = sub.add_parser("check", help="validate the configuration and show the targets")
    _config_args(p)
    p.add_argument("--probe", action="store_true",
                   help="also write and delete a probe object on each rclone remote")
    from pushcap.config.pcapdaemon_flags import add_pcapdaemon_flags

    add_pcapdaemon_flags(p)
    p.set_defaults(func=cmd_check)
