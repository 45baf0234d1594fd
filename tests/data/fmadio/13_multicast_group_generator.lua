-- one 1-minute series per UDP multicast group, generated in Lua, each group pinned to a CPU
-- (the form of FMADIO's OPRA example push_pcap.lua: SplitCmd sets the files' owner)

local Config = {}

Config.Target = {}

local Ports =
{
	-- A feed
	16101, 16102, 16103, 16104,
	-- B feed
	17101, 17102, 17103, 17104,
}

local CPUNo = 0
for i,PortNo in ipairs(Ports) do

	table.insert(Config.Target,
	{
		-- name of the file
		Desc      = "group-"..PortNo,
		Mode      = "File",

		-- location prefix
		Path      = "/mnt/remote0/OPRA/Multicast",

		-- split every 1minute
		Split     = "--split-time "..(60e9*1),

		-- set the owner of the output file
		SplitCmd  = "-Z fmadio",

		-- use HHMMSS filename
		FileName  = "--filename-tstr-HHMMSS",

		-- generate BPF filter
		FilterBPF = "udp and port "..PortNo,

		-- compression options
		PipeCmd   = "zstd -c",
		FileSuffix   = ".pcap.zstd",

		-- run 1:1 ratio. 1 multicast groups on 1 CPU
		CPU		  = 49 + math.floor(CPUNo/1),
	})

	CPUNo = CPUNo + 1
end

return Config
