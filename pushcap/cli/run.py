"""`pushcap run`: the daemon. Its services are imported only here, when it starts: `replay` and
`check` need none of them (start-up time, issue 15)."""

from __future__ import annotations

from pushcap.cli import _config_args, _imported, _load


def cmd_run(args) -> int:
    # Imported here: `replay` and `check` need none of the daemon's services (start-up time).
    import logging

    from pushcap.config.model import ConfigError
    from pushcap.config.record import replace
    from pushcap.supervisor import obs
    from pushcap.supervisor.daemon import Daemon
    from pushcap.supervisor.trigger_archives import archive_sources
    from pushcap.trigger.local_dir import prepare_local_dir
    from pushcap.trigger.localredis import LocalRedisService
    from pushcap.trigger.service import TriggerService

    _imported()
    log = logging.getLogger("pushcap.cli")
    config, push = _load(args)
    targets = push.targets
    trigger = config.trigger
    if trigger.refusal:  # `[kafka] listen = true`: loads (check), never runs half-configured
        raise ConfigError(trigger.refusal)
    if args.log_dir:
        config = replace(config, log_dir=args.log_dir)
    obs.setup_logging(args.log_level or config.log_level, config, targets)
    for notice in trigger.notices:
        log.warning("event=config_notice notice=%r", notice)
    daemon = Daemon(config, targets, args.lua, notices=push.notices)  # logs them once
    prepare_local_dir(trigger, config.source_file)  # the default writelocal folder
    if trigger.redis.listen:  # `[redis] listen = false` (an SQS-only node): no Redis at all
        daemon.add_service("local_redis", LocalRedisService(trigger.redis))
    # engine.rings is filled by engine.start(), which the daemon runs before services start.
    daemon.add_service("trigger", TriggerService(trigger, daemon.engine.rings, config.interfaces,
                                                 poll_timeout_ms=config.ring.poll_timeout_ms,
                                                 archives=archive_sources(daemon.engine)))
    return daemon.run()


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="capture the configured interfaces and push rolling files")
    _config_args(p)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-dir", help="also write push_<Desc>.log per target here "
                   "(overrides [general] logdir)")
    from pushcap.config.pcapdaemon_flags import add_pcapdaemon_flags

    add_pcapdaemon_flags(p)
    p.set_defaults(func=cmd_run)
