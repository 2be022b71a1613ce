# SPDX-License-Identifier: GPL-2.0
#
# Sourced by the VM runner and the mutant batch: what in a guest's kernel
# log is a report of a bug.

# Kernel log lines carry a printk timestamp.
KERNEL_LINE='^\[ *[0-9]+\.[0-9]+\]'
# A kernel line that reports a bug (an extended regular expression).
KERNEL_REPORT='BUG:|WARNING:|Oops|KASAN:|kmemleak: [0-9]+ new suspected|possible (circular|recursive) locking|inconsistent lock state|DEBUG_LOCKS_WARN_ON|INFO: lockdep is turned off|INFO: task .* blocked for more than|hung task|soft lockup|hard LOCKUP|Kernel panic|general protection fault|UBSAN:|Call Trace:|rcu: INFO'
