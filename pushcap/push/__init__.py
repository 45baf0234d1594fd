"""Push targets: select packets, split them into files, name, write and ship the files."""
