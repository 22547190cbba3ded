package main

func cmdDoctor(e *env, args []string) int { return exitUsage }
