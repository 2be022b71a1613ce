// SPDX-License-Identifier: GPL-2.0

//! Feature bits: virtio transport and ring features, vhost backend
//! features and virtio-blk device features (virtio 1.2, sections 5.2.3
//! and 6).

/// `VIRTIO_F_NOTIFY_ON_EMPTY`: interrupt when the avail ring runs empty.
pub const VIRTIO_F_NOTIFY_ON_EMPTY: u32 = 24;
/// `VIRTIO_F_ANY_LAYOUT`: no framing assumptions on descriptor layout.
pub const VIRTIO_F_ANY_LAYOUT: u32 = 27;
/// `VIRTIO_RING_F_INDIRECT_DESC`: indirect descriptor tables.
pub const VIRTIO_RING_F_INDIRECT_DESC: u32 = 28;
/// `VIRTIO_RING_F_EVENT_IDX`: `used_event` / `avail_event` suppression.
pub const VIRTIO_RING_F_EVENT_IDX: u32 = 29;
/// `VIRTIO_F_VERSION_1`: virtio 1.0 or later (little-endian rings).
pub const VIRTIO_F_VERSION_1: u32 = 32;
/// `VIRTIO_F_RING_PACKED`: the packed ring layout (not supported).
pub const VIRTIO_F_RING_PACKED: u32 = 34;

/// `VIRTIO_BLK_F_SIZE_MAX`: `size_max` bounds each segment.
pub const VIRTIO_BLK_F_SIZE_MAX: u32 = 1;
/// `VIRTIO_BLK_F_SEG_MAX`: `seg_max` bounds the segments of a request.
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
/// `VIRTIO_BLK_F_RO`: the device is read-only.
pub const VIRTIO_BLK_F_RO: u32 = 5;
/// `VIRTIO_BLK_F_BLK_SIZE`: `blk_size` holds the logical block size.
pub const VIRTIO_BLK_F_BLK_SIZE: u32 = 6;
/// `VIRTIO_BLK_F_FLUSH`: the FLUSH request is supported.
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// `VIRTIO_BLK_F_MQ`: more than one request queue.
pub const VIRTIO_BLK_F_MQ: u32 = 12;
/// `VIRTIO_BLK_F_DISCARD`: the DISCARD request is supported.
pub const VIRTIO_BLK_F_DISCARD: u32 = 13;
/// `VIRTIO_BLK_F_WRITE_ZEROES`: the WRITE_ZEROES request is supported.
pub const VIRTIO_BLK_F_WRITE_ZEROES: u32 = 14;

/// `VHOST_BACKEND_F_IOTLB_MSG_V2`: the only vhost backend feature known
/// to 6.12; vhost-blk has no IOTLB and offers none.
pub const VHOST_BACKEND_F_IOTLB_MSG_V2: u32 = 0x1;

/// The bit mask of feature bit `bit`.
pub const fn bit(bit: u32) -> u64 {
    1u64 << bit
}

/// The features `/dev/vhost-blk` offers in `VHOST_GET_FEATURES`.
///
/// Only what the module really implements is here: the split ring with
/// indirect descriptors, EVENT_IDX and NOTIFY_ON_EMPTY, any descriptor
/// layout, and virtio-blk reads, writes, flushes, GET_ID, DISCARD (on
/// backends that support it; elsewhere answered UNSUPP) and WRITE_ZEROES
/// (offloaded where the backend can, else written from the zero page), on
/// a backend that may be read-only, over several queues.
pub const SUPPORTED: u64 = bit(VIRTIO_F_VERSION_1)
    | bit(VIRTIO_F_ANY_LAYOUT)
    | bit(VIRTIO_F_NOTIFY_ON_EMPTY)
    | bit(VIRTIO_RING_F_INDIRECT_DESC)
    | bit(VIRTIO_RING_F_EVENT_IDX)
    | bit(VIRTIO_BLK_F_SEG_MAX)
    | bit(VIRTIO_BLK_F_BLK_SIZE)
    | bit(VIRTIO_BLK_F_FLUSH)
    | bit(VIRTIO_BLK_F_RO)
    | bit(VIRTIO_BLK_F_MQ)
    | bit(VIRTIO_BLK_F_DISCARD)
    | bit(VIRTIO_BLK_F_WRITE_ZEROES);

/// The `seg_max` a VMM should put in the config space: the chain holds at
/// most [`super::ring::MAX_CHAIN_SEGS`] buffers, two of them the header
/// and the status.
pub const SEG_MAX: u32 = super::ring::MAX_CHAIN_SEGS as u32 - 2;

/// The vhost backend features offered by `VHOST_GET_BACKEND_FEATURES`.
pub const SUPPORTED_BACKEND: u64 = 0;

/// Whether a driver-acked feature set is acceptable (a subset of
/// [`SUPPORTED`]).
pub const fn acceptable(acked: u64) -> bool {
    acked & !SUPPORTED == 0
}
