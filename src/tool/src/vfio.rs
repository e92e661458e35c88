//! A VFIO device opened the way a VMM opens it: the cdev `/dev/vfio/devices/vfioN` bound to an
//! iommufd (`/dev/iommu`).
//!
//! Binding (`VFIO_DEVICE_BIND_IOMMUFD`) is all region access needs: the VFIO core gates
//! read, write and the device ioctls on the binding, not on an attached IOAS. The device is
//! open (in the driver's sense) from the bind until both files are closed.

use std::fs::{File, OpenOptions};
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use vfio_bindings::bindings::vfio::{
    vfio_device_bind_iommufd, vfio_device_info, vfio_device_ioeventfd, vfio_info_cap_header,
    vfio_region_info, vfio_region_info_cap_type, VFIO_BASE, VFIO_PCI_CONFIG_REGION_INDEX,
    VFIO_PCI_NUM_REGIONS, VFIO_REGION_INFO_CAP_TYPE, VFIO_REGION_INFO_FLAG_CAPS, VFIO_TYPE,
};

// The structs and constants above come from rust-vmm's vfio-bindings. It has no ioctl numbers
// (they are `_IO()` macros, which bindgen does not translate), so these are the uapi's
// `_IO(VFIO_TYPE, VFIO_BASE + n)`, with n from include/uapi/linux/vfio.h.
const fn io(nr: u32) -> u64 {
    ((VFIO_TYPE as u64) << 8) | (VFIO_BASE + nr) as u64
}
const VFIO_DEVICE_GET_INFO: u64 = io(7);
const VFIO_DEVICE_GET_REGION_INFO: u64 = io(8);
const VFIO_DEVICE_RESET: u64 = io(11);
const VFIO_DEVICE_IOEVENTFD: u64 = io(16);
const VFIO_DEVICE_BIND_IOMMUFD: u64 = io(18);

/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const CONFIG_REGION_INDEX: u32 = VFIO_PCI_CONFIG_REGION_INDEX;
/// Device-specific regions come after the fixed ones.
const PCI_NUM_REGIONS: u32 = VFIO_PCI_NUM_REGIONS;
const REGION_INFO_LEN: usize = size_of::<vfio_region_info>();

/// A region of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// Region index.
    pub index: u32,
    /// Flags (`VFIO_REGION_INFO_FLAG_*`).
    pub flags: u32,
    /// Size in bytes.
    pub size: u64,
    /// Offset of the region in the device file.
    pub offset: u64,
    /// Type and subtype from a `VFIO_REGION_INFO_CAP_TYPE` capability.
    pub ty: Option<(u32, u32)>,
}

/// An open, bound VFIO device.
pub struct Device {
    dev: File,
    _iommufd: File,
    /// The `vfioN` name.
    pub cdev: String,
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

/// `ioctl(fd, req, buf)` with a buffer argument.
fn ioctl_buf(f: &File, req: u64, buf: &mut [u8]) -> std::io::Result<()> {
    // SAFETY: every request passed here reads and writes at most `argsz` bytes of the buffer,
    // and the callers set `argsz` (first u32) to at most the buffer's length.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req as _, buf.as_mut_ptr()) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `ioctl(fd, req, arg)` with the uapi struct of `req` as its argument.
fn ioctl_arg<T>(f: &File, req: u64, arg: &mut T) -> std::io::Result<()> {
    // SAFETY: callers pass the struct `req` takes (from vfio-bindings) with its `argsz` set to
    // at most `size_of::<T>()`; the kernel accesses no more than that of `arg`.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), req as _, std::ptr::from_mut(arg)) };
    if r < 0 {
        Err(errno())
    } else {
        Ok(())
    }
}

/// `argsz` of a whole uapi struct.
fn argsz<T>() -> u32 {
    u32::try_from(size_of::<T>()).unwrap_or(u32::MAX)
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

fn put_u32(b: &mut [u8], off: usize, v: u32) {
    if let Some(s) = b.get_mut(off..off + 4) {
        s.copy_from_slice(&v.to_le_bytes());
    }
}

/// The sysfs folder of PCI function `bdf` (already normalised).
pub fn sysfs_dev(bdf: &str) -> PathBuf {
    Path::new("/sys/bus/pci/devices").join(bdf)
}

/// The `vfioN` cdev name of a function bound to a VFIO driver.
///
/// # Errors
///
/// A message when the function is missing or has no VFIO cdev.
pub fn cdev_name(bdf: &str) -> Result<String, String> {
    let dev = sysfs_dev(bdf);
    if !dev.exists() {
        return Err(format!("no PCI function {bdf}"));
    }
    let dir = dev.join("vfio-dev");
    let rd = std::fs::read_dir(&dir).map_err(|_| {
        format!(
            "{bdf} has no VFIO device ({} missing): bind it to a VFIO driver first (vfio-persona bind {bdf})",
            dir.display()
        )
    })?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with("vfio") {
            return Ok(n);
        }
    }
    Err(format!("{bdf}: {} lists no vfioN", dir.display()))
}

impl Device {
    /// Opens the VFIO cdev of `bdf` and binds it to a fresh iommufd.
    ///
    /// # Errors
    ///
    /// A message naming the step that failed.
    pub fn open(bdf: &str) -> Result<Self, String> {
        let cdev = cdev_name(bdf)?;
        let path = Path::new("/dev/vfio/devices").join(&cdev);
        let rw = |p: &Path| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let dev = rw(&path)?;
        let iommufd = rw(Path::new("/dev/iommu"))?;
        // No flags: token_uuid_ptr stays 0, which kernels before it accept as a zero tail.
        let mut bind = vfio_device_bind_iommufd {
            argsz: argsz::<vfio_device_bind_iommufd>(),
            iommufd: iommufd.as_raw_fd(),
            ..Default::default()
        };
        ioctl_arg(&dev, VFIO_DEVICE_BIND_IOMMUFD, &mut bind)
            .map_err(|e| format!("{}: VFIO_DEVICE_BIND_IOMMUFD: {e}", path.display()))?;
        Ok(Self {
            dev,
            _iommufd: iommufd,
            cdev,
        })
    }

    /// Number of regions (`VFIO_DEVICE_GET_INFO`).
    ///
    /// # Errors
    ///
    /// The ioctl's error.
    pub fn num_regions(&self) -> Result<u32, String> {
        let mut info = vfio_device_info {
            argsz: argsz::<vfio_device_info>(),
            ..Default::default()
        };
        ioctl_arg(&self.dev, VFIO_DEVICE_GET_INFO, &mut info)
            .map_err(|e| format!("VFIO_DEVICE_GET_INFO: {e}"))?;
        Ok(info.num_regions)
    }

    /// Region info of `index`, with its type capability when there is one.
    ///
    /// # Errors
    ///
    /// The ioctl's error.
    pub fn region(&self, index: u32) -> Result<Region, String> {
        // A byte buffer, not the struct: the kernel appends the capability chain after it when
        // argsz leaves room. The offsets are those of the vfio-bindings structs.
        let mut b = vec![0u8; REGION_INFO_LEN];
        loop {
            let len = b.len();
            put_u32(
                &mut b,
                offset_of!(vfio_region_info, argsz),
                u32::try_from(len).unwrap_or(0),
            );
            put_u32(&mut b, offset_of!(vfio_region_info, index), index);
            ioctl_buf(&self.dev, VFIO_DEVICE_GET_REGION_INFO, &mut b)
                .map_err(|e| format!("VFIO_DEVICE_GET_REGION_INFO {index}: {e}"))?;
            let need =
                usize::try_from(u32_at(&b, offset_of!(vfio_region_info, argsz))).unwrap_or(0);
            if need > b.len() && need <= 65536 {
                b = vec![0u8; need];
                continue;
            }
            break;
        }
        let flags = u32_at(&b, offset_of!(vfio_region_info, flags));
        let mut ty = None;
        if flags & VFIO_REGION_INFO_FLAG_CAPS != 0 {
            let hdr = size_of::<vfio_info_cap_header>();
            let mut at =
                usize::try_from(u32_at(&b, offset_of!(vfio_region_info, cap_offset))).unwrap_or(0);
            let mut hops = 0;
            while at >= REGION_INFO_LEN && at + hdr <= b.len() && hops < 64 {
                let id = u16::from_le_bytes([
                    b.get(at).copied().unwrap_or(0),
                    b.get(at + 1).copied().unwrap_or(0),
                ]);
                if u32::from(id) == VFIO_REGION_INFO_CAP_TYPE {
                    ty = Some((
                        u32_at(&b, at + offset_of!(vfio_region_info_cap_type, type_)),
                        u32_at(&b, at + offset_of!(vfio_region_info_cap_type, subtype)),
                    ));
                }
                at = usize::try_from(u32_at(&b, at + offset_of!(vfio_info_cap_header, next)))
                    .unwrap_or(0);
                hops += 1;
            }
        }
        Ok(Region {
            index,
            flags,
            size: u64_at(&b, offset_of!(vfio_region_info, size)),
            offset: u64_at(&b, offset_of!(vfio_region_info, offset)),
            ty,
        })
    }

    /// The device-specific region with type `ty` and subtype `subtype`, if any.
    ///
    /// # Errors
    ///
    /// An ioctl error.
    pub fn find_region(&self, ty: u32, subtype: u32) -> Result<Option<Region>, String> {
        let n = self.num_regions()?;
        for index in PCI_NUM_REGIONS..n {
            let r = self.region(index)?;
            if r.ty == Some((ty, subtype)) {
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Reads `len` bytes at `off` of region `r` (one `pread`).
    ///
    /// # Errors
    ///
    /// The read's error.
    pub fn read(&self, r: &Region, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let n = self.dev.read_at(&mut buf, r.offset.saturating_add(off))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Writes `data` at `off` of region `r` (one `pwrite`); returns the count written.
    ///
    /// # Errors
    ///
    /// The write's error.
    pub fn write(&self, r: &Region, off: u64, data: &[u8]) -> std::io::Result<usize> {
        self.dev.write_at(data, r.offset.saturating_add(off))
    }

    /// Reads a whole region in naturally aligned dword accesses (what a VMM does for config
    /// space); a region of `size` not a multiple of 4 ends with smaller accesses.
    ///
    /// # Errors
    ///
    /// A message with the offset of the failing access.
    pub fn read_all(&self, r: &Region) -> Result<Vec<u8>, String> {
        let size = usize::try_from(r.size).map_err(|_| "region too large".to_string())?;
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let step = (size - out.len()).min(4);
            let off = out.len() as u64;
            let b = self
                .read(r, off, step)
                .map_err(|e| format!("region {} read at {off:#x}: {e}", r.index))?;
            if b.len() != step {
                return Err(format!(
                    "region {} read at {off:#x}: {} of {step} bytes",
                    r.index,
                    b.len()
                ));
            }
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// Maps `len` bytes at `off` of region `r` (read-only, shared) and unmaps them again: can a
    /// user map them?
    ///
    /// # Errors
    ///
    /// The `mmap` error.
    pub fn try_mmap(&self, r: &Region, off: u64, len: usize) -> std::io::Result<()> {
        let at = libc::off_t::try_from(r.offset.saturating_add(off))
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a fresh mapping at an address the kernel chooses, of a file we own; nothing
        // reads through it, and it is unmapped before returning.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                self.dev.as_raw_fd(),
                at,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        // SAFETY: `p` is the mapping of `len` bytes made above.
        unsafe { libc::munmap(p, len) };
        Ok(())
    }

    /// Registers an ioeventfd of `size` bytes at `off` of region `index` (data 0) and removes it
    /// again: does the device accept it?
    ///
    /// # Errors
    ///
    /// The ioctl's error.
    pub fn try_ioeventfd(&self, index: u32, off: u64, size: u32) -> std::io::Result<()> {
        // SAFETY: eventfd() takes no pointer.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(errno());
        }
        // The flags carry the access size (VFIO_DEVICE_IOEVENTFD_{8,16,32,64} are 1, 2, 4, 8).
        let mut ev = vfio_device_ioeventfd {
            argsz: argsz::<vfio_device_ioeventfd>(),
            flags: size,
            offset: (u64::from(index) << 40) | off,
            fd,
            ..Default::default()
        };
        let r = ioctl_arg(&self.dev, VFIO_DEVICE_IOEVENTFD, &mut ev);
        if r.is_ok() {
            // fd -1 removes it.
            ev.fd = -1;
            let _ = ioctl_arg(&self.dev, VFIO_DEVICE_IOEVENTFD, &mut ev);
        }
        // SAFETY: `fd` is the eventfd made above, owned here.
        unsafe { libc::close(fd) };
        r
    }

    /// `VFIO_DEVICE_RESET`.
    ///
    /// # Errors
    ///
    /// The ioctl's error.
    pub fn reset(&self) -> Result<(), String> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        let r = unsafe { libc::ioctl(self.dev.as_raw_fd(), VFIO_DEVICE_RESET as _, 0) };
        if r < 0 {
            return Err(format!("VFIO_DEVICE_RESET: {}", errno()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-written ioctl numbers against the values the uapi header's `_IO()` gives
    /// (`';'` is 0x3b, VFIO_BASE 100 is 0x64).
    #[test]
    fn ioctl_numbers_are_the_uapi_ones() {
        assert_eq!(VFIO_DEVICE_GET_INFO, 0x3b6b);
        assert_eq!(VFIO_DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(VFIO_DEVICE_RESET, 0x3b6f);
        assert_eq!(VFIO_DEVICE_IOEVENTFD, 0x3b74);
        assert_eq!(VFIO_DEVICE_BIND_IOMMUFD, 0x3b76);
    }
}
