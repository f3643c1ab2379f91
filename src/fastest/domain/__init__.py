"""Pure logic: no I/O, no clock, no implicit randomness. Everything here is a function of its inputs."""
