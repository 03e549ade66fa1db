//! `setsockopt` with an integer value: the socket options libc has and tokio does not
//! expose (SO_RCVLOWAT for read batching, UDP_GRO for the WebRTC socket).

use std::io;
use std::os::fd::RawFd;

/// Sets the integer option `name` at `level` on the open socket `fd` to `value`.
///
/// # Errors
/// The OS error (an option this kernel does not know, a bad descriptor).
pub(crate) fn set_int(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: the caller passes an open socket it holds for the call; the option value is
    // a c_int on the stack, its size passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
