//! The file-system calls the log makes, behind two small traits so that tests can run the
//! log on a [`crate::disk::MemDisk`] that fails writes or loses what was never synced; and
//! [`FsDisk`], the real one: one directory, files opened for appending.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A file the log appends to.
pub trait LogFile {
    /// Write all of `bytes` at the end of the file. On an error some of them may have been
    /// written: the caller cuts the file back with [`LogFile::truncate`].
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Make everything appended so far durable (`fdatasync`).
    fn sync(&mut self) -> io::Result<()>;
    /// Cut the file to `len` bytes; later appends go after them.
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The directory the log lives in.
pub trait Disk {
    /// `name` opened for appending (created empty if missing), and its length.
    fn open_append(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, u64)>;
    /// A new empty file `name` opened for appending; any file of that name is replaced.
    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// `name` to read from the start, and its length; `None` if there is no such file.
    fn open_read(&mut self, name: &str) -> io::Result<Option<(Box<dyn Read>, u64)>>;
    /// Replace `to` with `from`, atomically.
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Remove `name`; a missing file is not an error.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// Whether a file `name` exists.
    fn exists(&mut self, name: &str) -> bool;
    /// Make the directory's entries durable (after a rename).
    fn sync_dir(&mut self) -> io::Result<()>;
    /// Where `name` is, for log lines.
    fn path_of(&self, name: &str) -> String;
}

/// The real file system: files in one directory.
pub struct FsDisk {
    dir: PathBuf,
}

impl FsDisk {
    /// The directory `dir`, created if missing.
    pub fn open(dir: &Path) -> io::Result<FsDisk> {
        fs::create_dir_all(dir)?;
        Ok(FsDisk {
            dir: dir.to_path_buf(),
        })
    }
}

impl LogFile for File {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        // Opened with O_APPEND: every write lands at the end, also after a truncate.
        self.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

impl Disk for FsDisk {
    fn open_append(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, u64)> {
        let f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(self.dir.join(name))?;
        let len = f.metadata()?.len();
        Ok((Box::new(f), len))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        self.remove(name)?;
        let f = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(f))
    }

    fn open_read(&mut self, name: &str) -> io::Result<Option<(Box<dyn Read>, u64)>> {
        match File::open(self.dir.join(name)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((Box::new(f), len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn exists(&mut self, name: &str) -> bool {
        self.dir.join(name).exists()
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn path_of(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}
