from safepip.cli import entry

entry()
