local Config = {}

Config.Target = {}

-- the command reference's spellings: Mode in capitals, every FileName it lists
table.insert(Config.Target,
{
    Desc      = "pcap-all",
    Mode      = "FILE",
    Path      = "/mnt/remote0/push/all",
    Split     = "--split-time 60e9",
    FileName  = "--filename-tstr-HHMMSS",
    FilterBPF = "host 192.168.1.1"
})

table.insert(Config.Target,
{
    Desc      = "pcap-ns",
    Mode      = "FILE",
    Path      = "/mnt/remote0/push/ns",
    Split     = "--split-byte 1e9",
    FileName  = "--filename-tstr-HHMMSS_NS",
    FilterBPF = "not host 192.168.1.100"
})

table.insert(Config.Target,
{
    Desc      = "pcap-strftime",
    Mode      = "FILE",
    Path      = "/mnt/remote0/push/fmadio_",
    Split     = "--split-time 60e9",
    FileName  = "--filename-strftime \"%Y%m%d%H%M%S\"",
    FilterBPF = nil
})

return Config
