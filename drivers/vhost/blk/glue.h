/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The interface between the C glue (glue.c) and the Rust part of
 * vhost_blk.ko. Functions named vhost_blk_rs_* are implemented in Rust
 * (ffi/misc.rs); the others in glue.c. The Rust side declares the glue.c
 * functions by hand in ffi/mod.rs, in the style of Rust Binder.
 */
#ifndef _VHOST_BLK_GLUE_H
#define _VHOST_BLK_GLUE_H

/* Implemented in Rust. */
int vhost_blk_rs_open(void **devp);
void vhost_blk_rs_release(void *dev);
long vhost_blk_rs_ioctl(void *dev, unsigned int cmd, unsigned long arg);

/* Implemented in glue.c. */
int vhost_blk_misc_register(void);
void vhost_blk_misc_deregister(void);

#endif /* _VHOST_BLK_GLUE_H */
