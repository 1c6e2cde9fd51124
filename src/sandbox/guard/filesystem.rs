//! The guarded `wasi:filesystem` interfaces: every path a tool names is
//! resolved against the guest path of its directory descriptor, checked
//! against the [`Policy`](crate::sandbox::policy::Policy) and recorded in the
//! call's report before wasmtime-wasi (and cap-std beneath it) acts on it.
//! Everything else is delegated unchanged. Preopens are recorded so each
//! descriptor's guest path is known.

use wasmtime::component::Resource;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::sync::filesystem::types as fs;
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{FsError, FsResult};

use super::Guarded;
use crate::sandbox::policy::{normalize, PathUse};
use crate::sandbox::report::Resource as Kind;

/// Why the directory capability itself refused a path the policy allowed.
const ESCAPE: &str = "the path leaves its granted directory (through `..` or a symlink)";

fn refused_by_the_directory(err: &FsError) -> bool {
    use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
    matches!(
        err.downcast_ref(),
        Some(ErrorCode::NotPermitted | ErrorCode::Access)
    )
}

fn not_permitted() -> FsError {
    wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode::NotPermitted.into()
}

impl Guarded<'_> {
    /// Resolves `path` against the descriptor's guest path and checks it.
    /// Returns the normalized guest path, or records the denial and refuses.
    fn guard(
        &mut self,
        fd: &Resource<fs::Descriptor>,
        path: &str,
        want: PathUse,
    ) -> FsResult<String> {
        let base = self.state.descriptor_paths.get(&fd.rep()).cloned();
        let Some(base) = base else {
            self.state.log.denied(
                Kind::Path,
                path,
                "relative to a descriptor of unknown origin",
            );
            return Err(not_permitted());
        };
        let Some(guest_path) = normalize(&base, path) else {
            let shown = format!("{}/{path}", base.trim_end_matches('/'));
            self.state
                .log
                .denied(Kind::Path, &shown, "the path climbs above /");
            return Err(not_permitted());
        };
        match self.state.policy.check_path(&guest_path, want) {
            Ok(()) => Ok(guest_path),
            Err(reason) => {
                self.state.log.denied(Kind::Path, &guest_path, &reason);
                Err(not_permitted())
            }
        }
    }

    /// A symlink may only be created in a writable directory and only point
    /// inside the grant (relative targets are resolved from the link's
    /// directory).
    fn guard_symlink(
        &mut self,
        fd: &Resource<fs::Descriptor>,
        target: &str,
        link: &str,
    ) -> FsResult<()> {
        let link_path = self.guard(fd, link, PathUse::Write)?;
        let link_dir = normalize(&link_path, "..").unwrap_or_else(|| "/".to_string());
        let resolved = normalize(&link_dir, target);
        let allowed = resolved
            .as_deref()
            .is_some_and(|t| self.state.policy.check_path(t, PathUse::Read).is_ok());
        if allowed {
            return Ok(());
        }
        let shown = format!("{link_path} -> {target}");
        self.state.log.denied(
            Kind::Path,
            &shown,
            "the symlink would point outside the granted directories",
        );
        Err(not_permitted())
    }
}

impl preopens::Host for Guarded<'_> {
    fn get_directories(&mut self) -> anyhow::Result<Vec<(Resource<fs::Descriptor>, String)>> {
        let dirs = preopens::Host::get_directories(&mut self.wasi())?;
        for (fd, path) in &dirs {
            self.state.descriptor_paths.insert(fd.rep(), path.clone());
        }
        Ok(dirs)
    }
}

impl fs::Host for Guarded<'_> {
    fn convert_error_code(&mut self, err: FsError) -> anyhow::Result<fs::ErrorCode> {
        fs::Host::convert_error_code(&mut self.wasi(), err)
    }
    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> anyhow::Result<Option<fs::ErrorCode>> {
        fs::Host::filesystem_error_code(&mut self.wasi(), err)
    }
}

impl fs::HostDescriptor for Guarded<'_> {
    fn advise(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
        len: fs::Filesize,
        advice: fs::Advice,
    ) -> FsResult<()> {
        fs::HostDescriptor::advise(&mut self.wasi(), fd, offset, len, advice)
    }
    fn sync_data(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        fs::HostDescriptor::sync_data(&mut self.wasi(), fd)
    }
    fn get_flags(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorFlags> {
        fs::HostDescriptor::get_flags(&mut self.wasi(), fd)
    }
    fn get_type(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorType> {
        fs::HostDescriptor::get_type(&mut self.wasi(), fd)
    }
    fn set_size(&mut self, fd: Resource<fs::Descriptor>, size: fs::Filesize) -> FsResult<()> {
        fs::HostDescriptor::set_size(&mut self.wasi(), fd, size)
    }
    fn set_times(
        &mut self,
        fd: Resource<fs::Descriptor>,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        fs::HostDescriptor::set_times(&mut self.wasi(), fd, atim, mtim)
    }
    fn read(
        &mut self,
        fd: Resource<fs::Descriptor>,
        len: fs::Filesize,
        offset: fs::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        fs::HostDescriptor::read(&mut self.wasi(), fd, len, offset)
    }
    fn write(
        &mut self,
        fd: Resource<fs::Descriptor>,
        buf: Vec<u8>,
        offset: fs::Filesize,
    ) -> FsResult<fs::Filesize> {
        fs::HostDescriptor::write(&mut self.wasi(), fd, buf, offset)
    }
    fn read_directory(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<fs::DirectoryEntryStream>> {
        fs::HostDescriptor::read_directory(&mut self.wasi(), fd)
    }
    fn sync(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<()> {
        fs::HostDescriptor::sync(&mut self.wasi(), fd)
    }
    fn create_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.guard(&fd, &path, PathUse::Write)?;
        fs::HostDescriptor::create_directory_at(&mut self.wasi(), fd, path)
    }
    fn stat(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::DescriptorStat> {
        fs::HostDescriptor::stat(&mut self.wasi(), fd)
    }
    fn stat_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::DescriptorStat> {
        self.guard(&fd, &path, PathUse::Read)?;
        fs::HostDescriptor::stat_at(&mut self.wasi(), fd, path_flags, path)
    }
    fn set_times_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        atim: fs::NewTimestamp,
        mtim: fs::NewTimestamp,
    ) -> FsResult<()> {
        self.guard(&fd, &path, PathUse::Write)?;
        fs::HostDescriptor::set_times_at(&mut self.wasi(), fd, path_flags, path, atim, mtim)
    }
    fn link_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path_flags: fs::PathFlags,
        old_path: String,
        new_descriptor: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.guard(&fd, &old_path, PathUse::Write)?;
        self.guard(&new_descriptor, &new_path, PathUse::Write)?;
        fs::HostDescriptor::link_at(
            &mut self.wasi(),
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
    }
    fn open_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
        oflags: fs::OpenFlags,
        flags: fs::DescriptorFlags,
    ) -> FsResult<Resource<fs::Descriptor>> {
        let writes = flags
            .intersects(fs::DescriptorFlags::WRITE | fs::DescriptorFlags::MUTATE_DIRECTORY)
            || oflags.intersects(fs::OpenFlags::CREATE | fs::OpenFlags::TRUNCATE);
        let want = if writes {
            PathUse::Write
        } else {
            PathUse::Read
        };
        let guest_path = self.guard(&fd, &path, want)?;
        match fs::HostDescriptor::open_at(&mut self.wasi(), fd, path_flags, path, oflags, flags) {
            Ok(opened) => {
                match want {
                    PathUse::Read => self.state.log.read_path(&guest_path),
                    PathUse::Write => self.state.log.wrote_path(&guest_path),
                }
                self.state.descriptor_paths.insert(opened.rep(), guest_path);
                Ok(opened)
            }
            Err(err) => {
                if refused_by_the_directory(&err) {
                    self.state.log.denied(Kind::Path, &guest_path, ESCAPE);
                }
                Err(err)
            }
        }
    }
    fn drop(&mut self, fd: Resource<fs::Descriptor>) -> anyhow::Result<()> {
        self.state.descriptor_paths.remove(&fd.rep());
        fs::HostDescriptor::drop(&mut self.wasi(), fd)
    }
    fn readlink_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<String> {
        self.guard(&fd, &path, PathUse::Read)?;
        fs::HostDescriptor::readlink_at(&mut self.wasi(), fd, path)
    }
    fn remove_directory_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.guard(&fd, &path, PathUse::Write)?;
        fs::HostDescriptor::remove_directory_at(&mut self.wasi(), fd, path)
    }
    fn rename_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        old_path: String,
        new_fd: Resource<fs::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.guard(&fd, &old_path, PathUse::Write)?;
        self.guard(&new_fd, &new_path, PathUse::Write)?;
        fs::HostDescriptor::rename_at(&mut self.wasi(), fd, old_path, new_fd, new_path)
    }
    fn symlink_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        self.guard_symlink(&fd, &src_path, &dest_path)?;
        fs::HostDescriptor::symlink_at(&mut self.wasi(), fd, src_path, dest_path)
    }
    fn unlink_file_at(&mut self, fd: Resource<fs::Descriptor>, path: String) -> FsResult<()> {
        self.guard(&fd, &path, PathUse::Write)?;
        fs::HostDescriptor::unlink_file_at(&mut self.wasi(), fd, path)
    }
    fn read_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::InputStream>> {
        fs::HostDescriptor::read_via_stream(&mut self.wasi(), fd, offset)
    }
    fn write_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
        offset: fs::Filesize,
    ) -> FsResult<Resource<streams::OutputStream>> {
        fs::HostDescriptor::write_via_stream(&mut self.wasi(), fd, offset)
    }
    fn append_via_stream(
        &mut self,
        fd: Resource<fs::Descriptor>,
    ) -> FsResult<Resource<streams::OutputStream>> {
        fs::HostDescriptor::append_via_stream(&mut self.wasi(), fd)
    }
    fn is_same_object(
        &mut self,
        a: Resource<fs::Descriptor>,
        b: Resource<fs::Descriptor>,
    ) -> anyhow::Result<bool> {
        fs::HostDescriptor::is_same_object(&mut self.wasi(), a, b)
    }
    fn metadata_hash(&mut self, fd: Resource<fs::Descriptor>) -> FsResult<fs::MetadataHashValue> {
        fs::HostDescriptor::metadata_hash(&mut self.wasi(), fd)
    }
    fn metadata_hash_at(
        &mut self,
        fd: Resource<fs::Descriptor>,
        path_flags: fs::PathFlags,
        path: String,
    ) -> FsResult<fs::MetadataHashValue> {
        self.guard(&fd, &path, PathUse::Read)?;
        fs::HostDescriptor::metadata_hash_at(&mut self.wasi(), fd, path_flags, path)
    }
}

impl fs::HostDirectoryEntryStream for Guarded<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<fs::DirectoryEntryStream>,
    ) -> FsResult<Option<fs::DirectoryEntry>> {
        fs::HostDirectoryEntryStream::read_directory_entry(&mut self.wasi(), stream)
    }
    fn drop(&mut self, stream: Resource<fs::DirectoryEntryStream>) -> anyhow::Result<()> {
        fs::HostDirectoryEntryStream::drop(&mut self.wasi(), stream)
    }
}
