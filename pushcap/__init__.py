"""pushcap: always-on packet capture with rolling push, triggered capture and flow statistics."""

__version__ = "0.1.0"
