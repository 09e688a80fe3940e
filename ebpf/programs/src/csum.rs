//! Checksum arithmetic done by hand (RFC 1624), where the kernel's csum helpers cannot be used: the
//! XDP fast path (no skb) and fields inside an ICMP error's quoted packet (covered by the ICMP checksum
//! only, not by the headers the helpers know).

/// A 16-bit checksum field, as a big-endian number.
///
/// # Safety
/// `at` must point to 2 readable bytes.
#[inline(always)]
pub unsafe fn read16(at: *const u8) -> u16 {
    // SAFETY: guaranteed by the caller.
    u16::from_be_bytes(unsafe { core::ptr::read_unaligned(at.cast::<[u8; 2]>()) })
}

/// # Safety
/// `at` must point to 2 writable bytes.
#[inline(always)]
pub unsafe fn write16(at: *mut u8, value: u16) {
    // SAFETY: guaranteed by the caller.
    unsafe { core::ptr::write_unaligned(at.cast::<[u8; 2]>(), value.to_be_bytes()) };
}

/// RFC 1624 eqn. 3: the checksum after a 16-bit word changes from `old` to `new` (both as they lie in
/// memory, i.e. network byte order).
#[inline(always)]
pub fn replace16(check: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!check)
        + u32::from(!u16::from_be_bytes(old.to_ne_bytes()))
        + u32::from(u16::from_be_bytes(new.to_ne_bytes()));
    !fold(sum)
}

/// The checksum after a 32-bit field (an address, in memory order) changes.
#[inline(always)]
pub fn replace32(check: u16, old: u32, new: u32) -> u16 {
    let [o0, o1, o2, o3] = old.to_ne_bytes();
    let [n0, n1, n2, n3] = new.to_ne_bytes();
    let sum = u32::from(!check)
        + u32::from(!u16::from_be_bytes([o0, o1]))
        + u32::from(!u16::from_be_bytes([o2, o3]))
        + u32::from(u16::from_be_bytes([n0, n1]))
        + u32::from(u16::from_be_bytes([n2, n3]));
    !fold(sum)
}

#[inline(always)]
fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum after a 16-bit checksum field inside the summed range changes from `old` to `new`
/// (both as big-endian numbers, as [`read16`] gives them).
#[inline(always)]
pub fn replace_sum(check: u16, old: u16, new: u16) -> u16 {
    replace16(
        check,
        u16::from_ne_bytes(old.to_be_bytes()),
        u16::from_ne_bytes(new.to_be_bytes()),
    )
}
