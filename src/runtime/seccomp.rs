//! Seccomp: compile the spec's `linux.seccomp` (OCI semantics) into a kernel filter with
//! libseccomp, load it, and Docker's default profile as OCI data.
//!
//! ```text
//!  container helper (parent, may be multi-threaded)        container init (cloned child)
//!  ────────────────────────────────────────────────        ─────────────────────────────
//!  LinuxSeccomp ─ plan() ─▶ Plan (pure data: actions,
//!                           arches, flags, rules)
//!               ─ libseccomp ─▶ BPF program ─▶ SeccompFilter ──(copied by clone)──▶ load():
//!                                                                   one seccomp(2) call,
//!                                                                   then execve
//! ```
//!
//! Who calls what: the helper calls [`SeccompFilter::compile`] once, before it clones the
//! container's init; the init calls [`SeccompFilter::load`] as its last step before `execve`.
//! `swarm runtime spec` and `swarm run` take [`docker_default_profile`] for `linux.seccomp`.
//!
//! Why the BPF is generated in the parent: `seccomp_load` in libseccomp regenerates the whole
//! program (and allocates) on every call. A child cloned from a multi-threaded process must not
//! allocate (another thread may have held the allocator lock at clone time), so the child only
//! hands a prebuilt buffer to the kernel.
//!
//! Invariants:
//! - rule semantics follow runc: syscall names libseccomp does not know are skipped (a newer
//!   profile on an older libseccomp), rules whose action equals the default action are skipped
//!   (libseccomp rejects them), several conditions on the same argument index become one rule
//!   each (OR), otherwise all conditions form one rule (AND);
//! - the filter never sets `no_new_privs`: the runtime sets it exactly as `process.noNewPrivileges`
//!   says. Without it, loading needs CAP_SYS_ADMIN, so the caller must then load before dropping
//!   capabilities (runc does the same);
//! - `SCMP_ACT_NOTIFY` is refused with a clear error: swarm has no seccomp agent.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::{MFdFlags, memfd_create};
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};

/// A syscall has at most six arguments (`seccomp_data.args[6]`).
const MAX_SYSCALL_ARGS: usize = 6;
/// The kernel clamps larger `SECCOMP_RET_ERRNO` data to this, so a bigger value is a mistake.
const MAX_ERRNO: u32 = 4095;
/// `BPF_MAXINSNS`: the kernel refuses longer classic BPF programs.
const BPF_MAXINSNS: usize = 4096;
/// runc turns on libseccomp's binary-tree optimisation above this many rules: it makes the
/// common syscalls cheaper to match (libseccomp <= 2.5.4 misbehaves with it on empty filters).
const BINARY_TREE_MIN_RULES: usize = 32;

/// Errors from compiling or loading a seccomp filter; each names the rule, architecture or
/// flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {context}: action {action} is not supported: {reason}")]
    UnsupportedAction {
        context: String,
        action: LinuxSeccompAction,
        reason: &'static str,
    },
    #[error("seccomp: {context}: {action} value {value} is out of range (0..={max})")]
    ActionValueOutOfRange {
        context: String,
        action: LinuxSeccompAction,
        value: u32,
        max: u32,
    },
    #[error("seccomp: syscall rule {names:?}: {reason}")]
    InvalidRule { names: Vec<String>, reason: String },
    #[error("seccomp: architecture {arch}: {reason}")]
    Architecture { arch: Arch, reason: String },
    #[error("seccomp: flag {flag} is not supported: {reason}")]
    UnsupportedFlag {
        flag: LinuxSeccompFilterFlag,
        reason: &'static str,
    },
    #[error("seccomp: libseccomp rejected the rule for syscall {syscall:?}: {reason}")]
    AddRule { syscall: String, reason: String },
    #[error("seccomp: libseccomp failed to {op}: {reason}")]
    Libseccomp { op: &'static str, reason: String },
    #[error(
        "seccomp: the compiled filter has {instructions} BPF instructions, the kernel accepts at \
         most {BPF_MAXINSNS}"
    )]
    TooLarge { instructions: usize },
    #[error("seccomp: the kernel rejected the filter (flags {flags:#x}): {source}")]
    Load {
        flags: libc::c_ulong,
        source: std::io::Error,
    },
}

/// A compiled filter, built in the helper before the container's init is cloned and loaded by
/// the init as the last step before `execve`.
pub struct SeccompFilter {
    /// The classic BPF program libseccomp generated, in the kernel's `sock_filter` layout.
    program: Vec<libc::sock_filter>,
    /// `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    flags: libc::c_ulong,
}

impl fmt::Debug for SeccompFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompFilter")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

impl SeccompFilter {
    /// Translates `profile` to libseccomp rules and generates the BPF program. Never touches
    /// the calling process's own seccomp state.
    pub fn compile(profile: &LinuxSeccomp) -> Result<SeccompFilter, SeccompError> {
        let plan = Plan::from_profile(profile)?;
        if !plan.skipped.is_empty() {
            tracing::debug!(
                "seccomp: libseccomp {} does not know {:?}; their rules were skipped",
                libseccomp_version(),
                plan.skipped
            );
        }
        let context = plan.to_context()?;
        let program = export_program(&context)?;
        if program.len() > BPF_MAXINSNS {
            return Err(SeccompError::TooLarge {
                instructions: program.len(),
            });
        }
        Ok(SeccompFilter {
            program,
            flags: plan.flags,
        })
    }

    /// `compile`, with the result kept in `cache_dir` keyed by the SHA-256 of the profile (and
    /// of everything else that shapes the program: libseccomp's version, ours, the
    /// architecture). libseccomp needs ~30 ms to generate BPF for Docker's default profile,
    /// three times what a whole container start should cost; every container of an image
    /// uses the same profile, so after the first one a start reads ~10 KiB instead.
    ///
    /// The cache is a root-only directory of the runtime; a file that does not parse is
    /// ignored and replaced, and a failure to write it only costs the next start a compile.
    pub fn compile_cached(
        profile: &LinuxSeccomp,
        cache_dir: &std::path::Path,
    ) -> Result<SeccompFilter, SeccompError> {
        let key = cache_key(profile);
        let path = cache_dir.join(format!("{key}.bpf"));
        if let Some(filter) = read_cached(&path) {
            return Ok(filter);
        }
        let filter = SeccompFilter::compile(profile)?;
        if let Err(e) = write_cached(cache_dir, &path, &filter) {
            tracing::debug!("seccomp cache {}: {e}", path.display());
        }
        Ok(filter)
    }

    /// Number of BPF instructions; the kernel runs up to this many on every syscall.
    pub fn instruction_count(&self) -> usize {
        self.program.len()
    }

    /// The `SECCOMP_FILTER_FLAG_*` bits `load` passes to the kernel.
    pub fn flags(&self) -> libc::c_ulong {
        self.flags
    }

    /// Installs the filter on the calling thread (and, with `SECCOMP_FILTER_FLAG_TSYNC`, on
    /// all its threads). Irreversible. Allocation-free, so it is safe in a freshly cloned child
    /// of a multi-threaded process.
    ///
    /// Needs `no_new_privs` already set, or CAP_SYS_ADMIN in the caller's user namespace.
    // TODO(runtime/sys): the one unsafe block of this module; move it there.
    pub fn load(&self) -> Result<(), SeccompError> {
        match super::sys::seccomp_set_filter(&self.program, self.flags) {
            Ok(0) => Ok(()),
            // With TSYNC the kernel returns the id of a thread it could not synchronise.
            Ok(tid) => Err(SeccompError::Load {
                flags: self.flags,
                source: std::io::Error::other(format!("thread {tid} could not be synchronised")),
            }),
            Err(source) => Err(SeccompError::Load {
                flags: self.flags,
                source,
            }),
        }
    }
}

/// Version of the cache file layout: `[version u8][flags u64 LE][n × (code u16, jt u8, jf u8,
/// k u32) LE]`.
const CACHE_FORMAT: u8 = 1;

fn cache_key(profile: &LinuxSeccomp) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update([CACHE_FORMAT]);
    hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
    hasher.update(libseccomp_version().as_bytes());
    hasher.update(std::env::consts::ARCH.as_bytes());
    hasher.update(serde_json::to_vec(profile).unwrap_or_default());
    format!("{:x}", hasher.finalize())
}

fn read_cached(path: &std::path::Path) -> Option<SeccompFilter> {
    let bytes = std::fs::read(path).ok()?;
    let (&version, rest) = bytes.split_first()?;
    if version != CACHE_FORMAT || rest.len() < 8 || (rest.len() - 8) % 8 != 0 {
        return None;
    }
    let flags = u64::from_le_bytes(rest[..8].try_into().ok()?) as libc::c_ulong;
    let program: Vec<libc::sock_filter> = rest[8..]
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_le_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return None;
    }
    Some(SeccompFilter { program, flags })
}

fn write_cached(
    dir: &std::path::Path,
    path: &std::path::Path,
    filter: &SeccompFilter,
) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes = Vec::with_capacity(9 + filter.program.len() * 8);
    bytes.push(CACHE_FORMAT);
    // c_ulong is 32 bits on some targets: the file always stores 64.
    #[allow(clippy::unnecessary_cast)]
    let flags = filter.flags as u64;
    bytes.extend_from_slice(&flags.to_le_bytes());
    for insn in &filter.program {
        bytes.extend_from_slice(&insn.code.to_le_bytes());
        bytes.push(insn.jt);
        bytes.push(insn.jf);
        bytes.extend_from_slice(&insn.k.to_le_bytes());
    }
    // Unique temp name: several helpers may race to fill the same entry.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The profile translated into libseccomp terms: pure data, checked before libseccomp sees it.
#[derive(Debug)]
struct Plan {
    default_action: ScmpAction,
    architectures: Vec<(Arch, ScmpArch)>,
    flags: libc::c_ulong,
    rules: Vec<Rule>,
    /// Names libseccomp does not know (a profile newer than libseccomp): logged, not fatal.
    skipped: Vec<String>,
}

/// One libseccomp rule: the conditions are ANDed.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    name: String,
    syscall: ScmpSyscall,
    action: ScmpAction,
    conditions: Vec<ScmpArgCompare>,
}

impl Plan {
    fn from_profile(profile: &LinuxSeccomp) -> Result<Plan, SeccompError> {
        let default_action = scmp_action(
            profile.default_action(),
            profile.default_errno_ret(),
            || "defaultAction".to_owned(),
        )?;

        let architectures = profile
            .architectures()
            .iter()
            .flatten()
            .map(|arch| (*arch, scmp_arch(*arch)))
            .collect();
        let flags = filter_flags(profile.flags().as_deref().unwrap_or_default())?;

        let mut rules = Vec::new();
        let mut skipped = Vec::new();
        for syscall in profile.syscalls().iter().flatten() {
            plan_syscall(syscall, default_action, &mut rules, &mut skipped)?;
        }
        Ok(Plan {
            default_action,
            architectures,
            flags,
            rules,
            skipped,
        })
    }

    /// Feeds the plan to libseccomp.
    fn to_context(&self) -> Result<ScmpFilterContext, SeccompError> {
        let libseccomp = |op: &'static str| {
            move |e: libseccomp::error::SeccompError| SeccompError::Libseccomp {
                op,
                reason: e.to_string(),
            }
        };
        let mut context =
            ScmpFilterContext::new(self.default_action).map_err(libseccomp("create a filter"))?;
        // The runtime owns no_new_privs (process.noNewPrivileges); libseccomp must not set it.
        context
            .set_ctl_nnp(false)
            .map_err(libseccomp("clear the no_new_privs attribute"))?;
        for (arch, scmp) in &self.architectures {
            context
                .add_arch(*scmp)
                .map_err(|e| SeccompError::Architecture {
                    arch: *arch,
                    reason: format!("libseccomp {} cannot add it: {e}", libseccomp_version()),
                })?;
        }
        if self.rules.len() > BINARY_TREE_MIN_RULES
            && let Err(e) = context.set_ctl_optimize(2)
        {
            // Only slower matching, not a different filter.
            tracing::debug!("seccomp: binary tree optimisation unavailable: {e}");
        }
        for rule in &self.rules {
            context
                .add_rule_conditional(rule.action, rule.syscall, &rule.conditions)
                .map_err(|e| SeccompError::AddRule {
                    syscall: rule.name.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(context)
    }
}

/// Adds the libseccomp rules for one OCI syscall entry.
fn plan_syscall(
    syscall: &LinuxSyscall,
    default_action: ScmpAction,
    rules: &mut Vec<Rule>,
    skipped: &mut Vec<String>,
) -> Result<(), SeccompError> {
    let names = syscall.names();
    let invalid = |reason: String| SeccompError::InvalidRule {
        names: names.clone(),
        reason,
    };
    if names.is_empty() {
        return Err(invalid("no syscall names".into()));
    }
    if let Some(empty) = names.iter().position(|name| name.is_empty()) {
        return Err(invalid(format!("name #{empty} is empty")));
    }
    let action = scmp_action(syscall.action(), syscall.errno_ret(), || {
        format!("syscall rule {names:?}")
    })?;
    let args = syscall.args().as_deref().unwrap_or_default();
    let conditions = args
        .iter()
        .map(arg_condition)
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;

    // libseccomp refuses rules that repeat the default action; they change nothing anyway.
    if action == default_action {
        return Ok(());
    }
    // libseccomp compares each argument once per rule. runc's answer, kept for compatibility
    // with profiles written for it: if an index repeats, every condition becomes its own rule,
    // so the conditions are ORed instead of ANDed.
    let mut per_index = [0usize; MAX_SYSCALL_ARGS];
    for arg in args {
        per_index[arg.index()] += 1;
    }
    let condition_sets: Vec<Vec<ScmpArgCompare>> = if per_index.iter().any(|n| *n > 1) {
        conditions.iter().map(|c| vec![*c]).collect()
    } else {
        vec![conditions]
    };

    for name in names {
        let Ok(number) = ScmpSyscall::from_name(name) else {
            skipped.push(name.clone());
            continue;
        };
        for conditions in &condition_sets {
            rules.push(Rule {
                name: name.clone(),
                syscall: number,
                action,
                conditions: conditions.clone(),
            });
        }
    }
    Ok(())
}

/// OCI action (+ `errnoRet`) → libseccomp action. ERRNO and TRACE default to EPERM, as in runc.
fn scmp_action(
    action: LinuxSeccompAction,
    value: Option<u32>,
    context: impl Fn() -> String,
) -> Result<ScmpAction, SeccompError> {
    let checked = |max: u32| {
        let value = value.unwrap_or(libc::EPERM as u32);
        if value > max {
            return Err(SeccompError::ActionValueOutOfRange {
                context: context(),
                action,
                value,
                max,
            });
        }
        Ok(value)
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(checked(MAX_ERRNO)? as i32),
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(checked(u16::MAX as u32)? as u16),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::UnsupportedAction {
                context: context(),
                action,
                reason: "swarm has no seccomp notify agent (linux.seccomp.listenerPath)",
            });
        }
    })
}

/// OCI argument condition → libseccomp comparison. For `SCMP_CMP_MASKED_EQ`, `value` is the
/// mask and `valueTwo` the value the masked argument must equal (OCI and libseccomp agree).
fn arg_condition(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, String> {
    let index = arg.index();
    if index >= MAX_SYSCALL_ARGS {
        return Err(format!(
            "argument index {index} is out of range (a syscall has {MAX_SYSCALL_ARGS} arguments, \
             0..={})",
            MAX_SYSCALL_ARGS - 1
        ));
    }
    let value = arg.value();
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(value),
            arg.value_two().unwrap_or(0),
        ),
    };
    // index < 6, the cast cannot truncate.
    Ok(ScmpArgCompare::new(index as u32, op, datum))
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// OCI filter flags → `SECCOMP_FILTER_FLAG_*` bits for seccomp(2). An old kernel that lacks
/// one refuses it at `load` (EINVAL), with the flags in the error.
fn filter_flags(flags: &[LinuxSeccompFilterFlag]) -> Result<libc::c_ulong, SeccompError> {
    flags.iter().try_fold(0, |bits, flag| {
        let bit = match flag {
            // Harmless in the single-threaded init, and what the spec asks for.
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                return Err(SeccompError::UnsupportedFlag {
                    flag: *flag,
                    reason: "it only applies to SCMP_ACT_NOTIFY listeners, which swarm does not \
                             support",
                });
            }
        };
        Ok(bits | bit)
    })
}

/// Asks libseccomp for the BPF program. libseccomp 2.5 can only write it to a file descriptor,
/// so it goes through an anonymous memory file.
fn export_program(context: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SeccompError> {
    let io = |op: &'static str| {
        move |e: std::io::Error| SeccompError::Libseccomp {
            op,
            reason: e.to_string(),
        }
    };
    let memfd = memfd_create(c"swarm-seccomp-bpf", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| io("create a memfd for the BPF program")(e.into()))?;
    let mut file = std::fs::File::from(memfd);
    context
        .export_bpf(&file)
        .map_err(|e| SeccompError::Libseccomp {
            op: "export the BPF program",
            reason: e.to_string(),
        })?;
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(io("read back the BPF program"))?;

    const INSTRUCTION: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.len() % INSTRUCTION != 0 {
        return Err(SeccompError::Libseccomp {
            op: "export the BPF program",
            reason: format!(
                "{} bytes is not a whole number of {INSTRUCTION}-byte instructions",
                bytes.len()
            ),
        });
    }
    // `struct sock_filter { u16 code; u8 jt; u8 jf; u32 k; }` in host byte order.
    Ok(bytes
        .chunks_exact(INSTRUCTION)
        .map(|i| libc::sock_filter {
            code: u16::from_ne_bytes([i[0], i[1]]),
            jt: i[2],
            jf: i[3],
            k: u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
        })
        .collect())
}

fn libseccomp_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(_) => "(unknown version)".into(),
    }
}

// ─── Docker's default profile ───────────────────────────────────────────────────────────────
//
// Source: moby `profiles/seccomp/default_linux.go` (module github.com/moby/profiles), the Go
// code `default.json` is generated from. Moby evaluates its `includes`/`excludes` filters when
// it builds a container's spec; this code does the same with the container's capabilities and
// the architecture swarm is compiled for.

/// Allowed for every container: moby's main list, plus `process_vm_readv`,
/// `process_vm_writev` and `ptrace`, which moby allows on kernels >= 4.8 (where ptrace can no
/// longer be used to bypass seccomp); swarm does not run on older kernels.
#[rustfmt::skip]
const DOCKER_ALLOWED: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk",
    "cachestat", "capget", "capset", "chdir", "chmod", "chown", "chown32",
    "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve",
    "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync",
    "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
    "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid",
    "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen",
    "listmount", "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr",
    "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "_newselect", "open", "openat", "openat2", "pause", "pidfd_open",
    "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "process_vm_readv", "process_vm_writev", "pselect6",
    "pselect6_time64", "ptrace", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
    "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat",
    "renameat2", "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler",
    "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups",
    "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32",
    "setrlimit", "set_robust_list", "setsid", "setsockopt", "set_thread_area",
    "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask",
    "sigreturn", "socketcall", "socketpair", "splice", "stat", "stat64", "statfs",
    "statfs64", "statmount", "statx", "symlink", "symlinkat", "sync", "sync_file_range",
    "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
    "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate", "truncate64",
    "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "uretprobe", "utime", "utimensat",
    "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid",
    "write", "writev",
];

/// Moby's architecture-specific allow rules, for the architecture swarm runs on.
#[cfg(target_arch = "x86_64")]
const ARCH_ALLOWED: &[&str] = &["arch_prctl", "modify_ldt"];
#[cfg(target_arch = "aarch64")]
const ARCH_ALLOWED: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "sync_file_range2",
    "breakpoint",
    "cacheflush",
    "set_tls",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH_ALLOWED: &[&str] = &[];

/// The ABIs a container may use: moby's `archMap` entry for this architecture. Elsewhere only
/// the native ABI (libseccomp's default); everything else is killed as a bad architecture.
#[cfg(target_arch = "x86_64")]
const DOCKER_ARCHITECTURES: &[Arch] = &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32];
#[cfg(target_arch = "aarch64")]
const DOCKER_ARCHITECTURES: &[Arch] = &[Arch::ScmpArchAarch64, Arch::ScmpArchArm];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const DOCKER_ARCHITECTURES: &[Arch] = &[];

/// Syscalls moby allows only when the container holds the capability (the kernel would check
/// the capability anyway; seccomp removes the attack surface when it is missing).
#[rustfmt::skip]
pub const CAPABILITY_ALLOWED: &[(Capability, &[&str])] = &[
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (Capability::SysAdmin, &[
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
        "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount",
        "mount_setattr", "move_mount", "open_tree", "perf_event_open", "quotactl",
        "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount", "umount2",
        "unshare",
    ]),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (Capability::SysModule, &["delete_module", "init_module", "finit_module"]),
    (Capability::SysPacct, &["acct"]),
    (Capability::SysPtrace, &[
        "kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev",
        "ptrace",
    ]),
    (Capability::SysRawio, &["iopl", "ioperm"]),
    (Capability::SysTime, &["settimeofday", "stime", "clock_settime", "clock_settime64"]),
    (Capability::SysTtyConfig, &["vhangup"]),
    (Capability::SysNice, &["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

/// `personality(2)` arguments moby allows: PER_LINUX, UNAME26, ADDR_NO_RANDOMIZE (setarch -R),
/// UNAME26|ADDR_NO_RANDOMIZE, and 0xffffffff (query the current persona).
const PERSONALITY_ALLOWED: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Socket address families moby allows for `socket(2)`, sorted (include/linux/socket.h).
/// Blocked: 12 AF_DECnet, 19 AF_ECONET, 20 AF_ATMSVC, 23 AF_IRDA, 25 AF_WANPIPE, 34 AF_ISDN,
/// 37 AF_CAIF (gone from the kernel), 38 AF_ALG (kernel crypto API, needless attack surface),
/// 40 AF_VSOCK (reaches host VMs across network namespaces).
const SOCKET_DOMAINS_ALLOWED: &[u64] = &[
    1,  // AF_UNIX
    2,  // AF_INET
    3,  // AF_AX25
    4,  // AF_IPX
    5,  // AF_APPLETALK
    6,  // AF_NETROM
    7,  // AF_BRIDGE
    8,  // AF_ATMPVC
    9,  // AF_X25
    10, // AF_INET6
    11, // AF_ROSE
    13, // AF_NETBEUI
    14, // AF_SECURITY
    15, // AF_KEY
    16, // AF_NETLINK
    17, // AF_PACKET
    18, // AF_ASH
    21, // AF_RDS
    22, // AF_SNA
    24, // AF_PPPOX
    26, // AF_LLC
    27, // AF_IB
    28, // AF_MPLS
    29, // AF_CAN
    30, // AF_TIPC
    31, // AF_BLUETOOTH
    32, // AF_IUCV
    33, // AF_RXRPC
    35, // AF_PHONET
    36, // AF_IEEE802154
    39, // AF_NFC
    41, // AF_KCM
    42, // AF_QIPCRTR
    43, // AF_SMC
    44, // AF_XDP
    45, // AF_MCTP
];

/// The namespace flags `clone(2)` may not carry without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// s390 passes the clone flags as the second argument.
const CLONE_FLAGS_ARG: usize = if cfg!(target_arch = "s390x") { 1 } else { 0 };

/// Docker's default seccomp profile (moby `profiles/seccomp/default.json`) for this host's
/// architecture, as OCI data, given the capabilities the container gets (some rules depend on
/// them, as in Docker; pass the bounding set, which is what moby looks at).
pub fn docker_default_profile(capabilities: &[Capability]) -> LinuxSeccomp {
    let has = |cap: Capability| capabilities.contains(&cap);
    let mut syscalls = vec![allow(DOCKER_ALLOWED.iter().chain(ARCH_ALLOWED), Vec::new())];
    syscalls.extend(socket_rules(SOCKET_DOMAINS_ALLOWED));
    syscalls.extend(PERSONALITY_ALLOWED.iter().map(|persona| {
        allow(
            ["personality"].iter(),
            vec![arg(0, LinuxSeccompOperator::ScmpCmpEq, *persona)],
        )
    }));
    for (cap, names) in CAPABILITY_ALLOWED {
        if has(*cap) {
            syscalls.push(allow(names.iter(), Vec::new()));
        }
    }
    if !has(Capability::SysAdmin) {
        // Threads and forks yes, new namespaces no: (flags & NAMESPACES) == 0.
        let no_namespaces = masked_arg(CLONE_FLAGS_ARG, CLONE_NAMESPACE_FLAGS, 0);
        syscalls.push(allow(["clone"].iter(), vec![no_namespaces]));
        // clone3 passes its flags in memory seccomp cannot read; ENOSYS makes libc fall back
        // to clone, which the rule above can check.
        let mut clone3 = LinuxSyscall::default();
        clone3
            .set_names(vec!["clone3".into()])
            .set_action(LinuxSeccompAction::ScmpActErrno)
            .set_errno_ret(Some(libc::ENOSYS as u32));
        syscalls.push(clone3);
    }

    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(libc::EPERM as u32))
        .set_architectures(
            (!DOCKER_ARCHITECTURES.is_empty()).then(|| DOCKER_ARCHITECTURES.to_vec()),
        )
        .set_syscalls(Some(syscalls));
    profile
}

fn allow<'a>(names: impl Iterator<Item = &'a &'a str>, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut syscall = LinuxSyscall::default();
    syscall
        .set_names(names.map(|name| (*name).to_owned()).collect())
        .set_action(LinuxSeccompAction::ScmpActAllow)
        .set_args((!args.is_empty()).then_some(args));
    syscall
}

fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .build()
        // Every field has a default and the builder validates nothing: it cannot fail.
        .expect("LinuxSeccompArgBuilder has no validation")
}

/// `(argument[index] & mask) == value`.
fn masked_arg(index: usize, mask: u64, value: u64) -> LinuxSeccompArg {
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
        .value(mask)
        .value_two(value)
        .build()
        .expect("LinuxSeccompArgBuilder has no validation")
}

/// `socket(2)` allow rules for sorted `domains`, the way moby builds them: conditions on the
/// same argument are ORed by runc, so a bounded range cannot be expressed; a leading run that
/// starts at AF_UNIX becomes one `domain < end` rule (AF_UNSPEC, 0, cannot create a socket),
/// every other domain one `domain == d` rule.
fn socket_rules(domains: &[u64]) -> Vec<LinuxSyscall> {
    const AF_UNIX: u64 = libc::AF_UNIX as u64;
    let socket = |op, value| allow(["socket"].iter(), vec![arg(0, op, value)]);
    let mut rules = Vec::new();
    let mut rest = domains;
    if let [AF_UNIX, next, ..] = domains
        && *next == AF_UNIX + 1
    {
        let run = domains
            .iter()
            .zip(AF_UNIX..)
            .take_while(|(domain, expected)| **domain == *expected)
            .count();
        rules.push(socket(
            LinuxSeccompOperator::ScmpCmpLt,
            AF_UNIX + run as u64,
        ));
        rest = &domains[run..];
    }
    rules.extend(
        rest.iter()
            .map(|domain| socket(LinuxSeccompOperator::ScmpCmpEq, *domain)),
    );
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t10_compiled_filters_are_cached_and_a_corrupt_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let profile = docker_default_profile(&docker_caps());
        let fresh = SeccompFilter::compile_cached(&profile, &cache).unwrap();
        let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().collect();
        assert_eq!(entries.len(), 1, "one cache entry");
        let cached = SeccompFilter::compile_cached(&profile, &cache).unwrap();
        let words = |f: &SeccompFilter| {
            f.program
                .iter()
                .map(|i| (i.code, i.jt, i.jf, i.k))
                .collect::<Vec<_>>()
        };
        assert_eq!(words(&fresh), words(&cached));
        assert_eq!(fresh.flags, cached.flags);
        // A torn or tampered entry is not trusted: it is recompiled and rewritten.
        let path = entries[0].path();
        std::fs::write(&path, b"\x01garbage").unwrap();
        let again = SeccompFilter::compile_cached(&profile, &cache).unwrap();
        assert_eq!(words(&again), words(&fresh));
        assert!(std::fs::metadata(&path).unwrap().len() > 100);
        // A different profile gets a different entry.
        let mut other = profile.clone();
        other.set_default_errno_ret(Some(libc::EACCES as u32));
        SeccompFilter::compile_cached(&other, &cache).unwrap();
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }

    /// A classic-BPF interpreter for seccomp programs, so tests can ask the compiled filter
    /// what the kernel would answer, without loading it.
    mod bpf {
        /// `struct seccomp_data` as the kernel lays it out for the filter.
        pub fn seccomp_data(nr: i32, arch: u32, args: [u64; 6]) -> Vec<u8> {
            let mut data = Vec::with_capacity(64);
            data.extend(nr.to_ne_bytes());
            data.extend(arch.to_ne_bytes());
            data.extend(0u64.to_ne_bytes()); // instruction_pointer
            for arg in args {
                data.extend(arg.to_ne_bytes());
            }
            data
        }

        /// Runs `program` on `data` and returns the filter's `SECCOMP_RET_*` value.
        pub fn run(program: &[libc::sock_filter], data: &[u8]) -> u32 {
            let (mut a, mut x, mut mem) = (0u32, 0u32, [0u32; 16]);
            let mut pc = 0;
            loop {
                let ins = program[pc];
                pc += 1;
                let k = ins.k;
                let src = if ins.code & 0x08 != 0 { x } else { k };
                match ins.code & 0x07 {
                    // BPF_LD
                    0x00 => match ins.code {
                        0x20 => {
                            let at = k as usize;
                            a = u32::from_ne_bytes(data[at..at + 4].try_into().unwrap());
                        }
                        0x00 => a = k,
                        0x60 => a = mem[k as usize],
                        0x80 => a = data.len() as u32,
                        code => panic!("unsupported BPF_LD {code:#x}"),
                    },
                    // BPF_LDX
                    0x01 => match ins.code {
                        0x01 => x = k,
                        0x61 => x = mem[k as usize],
                        0x81 => x = data.len() as u32,
                        code => panic!("unsupported BPF_LDX {code:#x}"),
                    },
                    0x02 => mem[k as usize] = a,
                    0x03 => mem[k as usize] = x,
                    // BPF_ALU
                    0x04 => {
                        a = match ins.code & 0xf0 {
                            0x00 => a.wrapping_add(src),
                            0x10 => a.wrapping_sub(src),
                            0x20 => a.wrapping_mul(src),
                            0x30 => a / src,
                            0x40 => a | src,
                            0x50 => a & src,
                            0x60 => a << src,
                            0x70 => a >> src,
                            0x80 => a.wrapping_neg(),
                            0x90 => a % src,
                            0xa0 => a ^ src,
                            op => panic!("unsupported BPF_ALU op {op:#x}"),
                        }
                    }
                    // BPF_JMP
                    0x05 => {
                        let taken = match ins.code & 0xf0 {
                            0x00 => {
                                pc += k as usize;
                                continue;
                            }
                            0x10 => a == src,
                            0x20 => a > src,
                            0x30 => a >= src,
                            0x40 => a & src != 0,
                            op => panic!("unsupported BPF_JMP op {op:#x}"),
                        };
                        pc += usize::from(if taken { ins.jt } else { ins.jf });
                    }
                    // BPF_RET
                    0x06 => return if ins.code & 0x18 == 0x10 { a } else { k },
                    // BPF_MISC: TAX / TXA
                    _ => {
                        if ins.code & 0xf8 == 0 {
                            x = a
                        } else {
                            a = x
                        }
                    }
                }
            }
        }
    }

    #[derive(Debug, PartialEq)]
    enum Verdict {
        Allow,
        Errno(u32),
        KillThread,
        KillProcess,
        Other(u32),
    }

    fn verdict(ret: u32) -> Verdict {
        match ret & 0xffff_0000 {
            0x7fff_0000 => Verdict::Allow,
            0x0005_0000 => Verdict::Errno(ret & 0xffff),
            0x0000_0000 => Verdict::KillThread,
            0x8000_0000 => Verdict::KillProcess,
            _ => Verdict::Other(ret),
        }
    }

    #[cfg(target_arch = "x86_64")]
    const NATIVE: Arch = Arch::ScmpArchX86_64;
    #[cfg(target_arch = "aarch64")]
    const NATIVE: Arch = Arch::ScmpArchAarch64;

    /// What `filter` answers when the native ABI calls `name` with `args`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn call(filter: &SeccompFilter, name: &str, args: [u64; 6]) -> Verdict {
        let nr = ScmpSyscall::from_name(name).unwrap().as_raw_syscall();
        assert!(nr >= 0, "{name} is not a native syscall here");
        call_nr(filter, NATIVE as u32, nr, args)
    }

    fn call_nr(filter: &SeccompFilter, arch: u32, nr: i32, args: [u64; 6]) -> Verdict {
        verdict(bpf::run(
            &filter.program,
            &bpf::seccomp_data(nr, arch, args),
        ))
    }

    fn profile(default: LinuxSeccompAction, syscalls: Vec<LinuxSyscall>) -> LinuxSeccomp {
        let mut profile = LinuxSeccomp::default();
        profile
            .set_default_action(default)
            .set_syscalls(Some(syscalls));
        profile
    }

    fn rule(
        names: &[&str],
        action: LinuxSeccompAction,
        args: Vec<LinuxSeccompArg>,
    ) -> LinuxSyscall {
        let mut syscall = LinuxSyscall::default();
        syscall
            .set_names(names.iter().map(|n| n.to_string()).collect())
            .set_action(action)
            .set_args((!args.is_empty()).then_some(args));
        syscall
    }

    fn docker_caps() -> Vec<Capability> {
        crate::runtime::spec::docker_default_capabilities()
    }

    /// Every name an unconditional allow rule of `profile` lists.
    fn unconditionally_allowed(profile: &LinuxSeccomp) -> Vec<String> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().clone())
            .collect()
    }

    const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;
    const ERRNO: LinuxSeccompAction = LinuxSeccompAction::ScmpActErrno;
    const EQ: LinuxSeccompOperator = LinuxSeccompOperator::ScmpCmpEq;

    // ─── rule generation ────────────────────────────────────────────────────────────────

    #[test]
    fn unknown_syscall_names_are_skipped_not_fatal() {
        let profile = profile(
            ALLOW,
            vec![rule(&["getpid", "not_a_syscall_at_all"], ERRNO, vec![])],
        );
        let plan = Plan::from_profile(&profile).unwrap();
        assert_eq!(plan.skipped, vec!["not_a_syscall_at_all".to_string()]);
        assert_eq!(plan.rules.len(), 1);
        assert_eq!(plan.rules[0].name, "getpid");
        SeccompFilter::compile(&profile).expect("a skipped name does not fail the compile");
    }

    #[test]
    fn rules_with_the_default_action_are_skipped() {
        let profile = profile(
            ERRNO,
            vec![
                rule(&["getpid"], ERRNO, vec![]),
                rule(&["getppid"], ALLOW, vec![]),
            ],
        );
        let plan = Plan::from_profile(&profile).unwrap();
        let names: Vec<_> = plan.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["getppid"]);
        SeccompFilter::compile(&profile).unwrap();
    }

    #[test]
    fn errno_rule_with_other_value_than_the_default_is_kept() {
        let mut enosys = rule(&["getpid"], ERRNO, vec![]);
        enosys.set_errno_ret(Some(libc::ENOSYS as u32));
        let plan = Plan::from_profile(&profile(ERRNO, vec![enosys])).unwrap();
        assert_eq!(plan.default_action, ScmpAction::Errno(libc::EPERM));
        assert_eq!(plan.rules[0].action, ScmpAction::Errno(libc::ENOSYS));
    }

    #[test]
    fn conditions_on_one_argument_become_separate_rules() {
        let args = vec![arg(0, EQ, 1), arg(0, EQ, 2), arg(1, EQ, 3)];
        let plan =
            Plan::from_profile(&profile(ALLOW, vec![rule(&["personality"], ERRNO, args)])).unwrap();
        let conditions: Vec<_> = plan.rules.iter().map(|r| r.conditions.clone()).collect();
        assert_eq!(
            conditions,
            vec![
                vec![ScmpArgCompare::new(0, ScmpCompareOp::Equal, 1)],
                vec![ScmpArgCompare::new(0, ScmpCompareOp::Equal, 2)],
                vec![ScmpArgCompare::new(1, ScmpCompareOp::Equal, 3)],
            ]
        );
    }

    #[test]
    fn conditions_on_different_arguments_form_one_rule() {
        let args = vec![arg(0, EQ, 1), arg(2, LinuxSeccompOperator::ScmpCmpGt, 7)];
        let plan = Plan::from_profile(&profile(ALLOW, vec![rule(&["kill", "tkill"], ERRNO, args)]))
            .unwrap();
        assert_eq!(plan.rules.len(), 2, "one rule per name");
        for rule in &plan.rules {
            assert_eq!(
                rule.conditions,
                vec![
                    ScmpArgCompare::new(0, ScmpCompareOp::Equal, 1),
                    ScmpArgCompare::new(2, ScmpCompareOp::Greater, 7),
                ]
            );
        }
    }

    #[test]
    fn every_operator_maps_and_masked_eq_takes_value_as_mask() {
        use LinuxSeccompOperator::*;
        let cases = [
            (ScmpCmpNe, ScmpCompareOp::NotEqual),
            (ScmpCmpLt, ScmpCompareOp::Less),
            (ScmpCmpLe, ScmpCompareOp::LessOrEqual),
            (ScmpCmpEq, ScmpCompareOp::Equal),
            (ScmpCmpGe, ScmpCompareOp::GreaterEqual),
            (ScmpCmpGt, ScmpCompareOp::Greater),
        ];
        for (op, expected) in cases {
            assert_eq!(
                arg_condition(&arg(3, op, 42)).unwrap(),
                ScmpArgCompare::new(3, expected, 42)
            );
        }
        let masked = masked_arg(0, 0xff00, 0x1200);
        assert_eq!(
            arg_condition(&masked).unwrap(),
            ScmpArgCompare::new(0, ScmpCompareOp::MaskedEqual(0xff00), 0x1200)
        );
    }

    #[test]
    fn actions_map_like_runc() {
        use LinuxSeccompAction::*;
        let ctx = || String::from("test");
        let cases = [
            (ScmpActAllow, None, ScmpAction::Allow),
            (ScmpActErrno, None, ScmpAction::Errno(libc::EPERM)),
            (ScmpActErrno, Some(38), ScmpAction::Errno(38)),
            (ScmpActKill, None, ScmpAction::KillThread),
            (ScmpActKillThread, None, ScmpAction::KillThread),
            (ScmpActKillProcess, None, ScmpAction::KillProcess),
            (ScmpActTrap, None, ScmpAction::Trap),
            (ScmpActTrace, None, ScmpAction::Trace(libc::EPERM as u16)),
            (ScmpActTrace, Some(7), ScmpAction::Trace(7)),
            (ScmpActLog, None, ScmpAction::Log),
        ];
        for (action, value, expected) in cases {
            assert_eq!(
                scmp_action(action, value, ctx).unwrap(),
                expected,
                "{action}"
            );
        }
    }

    #[test]
    fn filter_flags_map_to_kernel_bits() {
        use LinuxSeccompFilterFlag::*;
        let bits = filter_flags(&[
            SeccompFilterFlagTsync,
            SeccompFilterFlagLog,
            SeccompFilterFlagSpecAllow,
        ])
        .unwrap();
        assert_eq!(bits, 0b111);
        let mut with_flags = profile(ALLOW, vec![]);
        with_flags.set_flags(Some(vec![SeccompFilterFlagLog]));
        assert_eq!(
            SeccompFilter::compile(&with_flags).unwrap().flags(),
            libc::SECCOMP_FILTER_FLAG_LOG
        );
    }

    // ─── errors a person can act on ─────────────────────────────────────────────────────

    #[test]
    fn notify_is_refused_with_the_rule_named() {
        let err = SeccompFilter::compile(&profile(
            ALLOW,
            vec![rule(&["mkdir"], LinuxSeccompAction::ScmpActNotify, vec![])],
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, SeccompError::UnsupportedAction { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("SCMP_ACT_NOTIFY") && msg.contains("mkdir"),
            "{msg}"
        );

        let err = SeccompFilter::compile(&profile(LinuxSeccompAction::ScmpActNotify, vec![]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaultAction") && err.contains("SCMP_ACT_NOTIFY"),
            "{err}"
        );
    }

    #[test]
    fn errno_beyond_max_errno_is_refused() {
        let mut bad = rule(&["getpid"], ERRNO, vec![]);
        bad.set_errno_ret(Some(70_000));
        let msg = SeccompFilter::compile(&profile(ALLOW, vec![bad]))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("70000") && msg.contains("getpid") && msg.contains("4095"),
            "{msg}"
        );
    }

    #[test]
    fn argument_index_beyond_six_is_refused() {
        let msg = SeccompFilter::compile(&profile(
            ALLOW,
            vec![rule(&["openat"], ERRNO, vec![arg(6, EQ, 0)])],
        ))
        .unwrap_err()
        .to_string();
        assert!(msg.contains("openat") && msg.contains("index 6"), "{msg}");
    }

    #[test]
    fn unknown_operator_is_refused_when_the_profile_is_parsed() {
        // Operators and actions are enums in oci-spec: a typo never reaches `compile`.
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["kill"],
            "action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_ALMOST"}]}]}"#;
        let err = serde_json::from_str::<LinuxSeccomp>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SCMP_CMP_ALMOST"), "{err}");
    }

    #[test]
    fn empty_syscall_name_is_refused() {
        let msg = SeccompFilter::compile(&profile(ALLOW, vec![rule(&["read", ""], ERRNO, vec![])]))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("empty"), "{msg}");
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn architecture_libseccomp_cannot_mix_in_is_refused_by_name() {
        // libseccomp cannot put a big-endian ABI in a little-endian filter.
        let mut bad = profile(ALLOW, vec![]);
        bad.set_architectures(Some(vec![Arch::ScmpArchS390x]));
        let err = SeccompFilter::compile(&bad).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, SeccompError::Architecture { .. }), "{msg}");
        assert!(msg.contains("SCMP_ARCH_S390X"), "{msg}");
    }

    #[test]
    fn wait_killable_recv_flag_is_refused() {
        let mut bad = profile(ALLOW, vec![]);
        bad.set_flags(Some(vec![
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
        ]));
        let msg = SeccompFilter::compile(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"),
            "{msg}"
        );
    }

    // ─── the compiled program behaves as the profile says ───────────────────────────────

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn same_index_conditions_are_ored_in_the_compiled_filter() {
        let filter = SeccompFilter::compile(&profile(
            ALLOW,
            vec![rule(
                &["personality"],
                ERRNO,
                vec![arg(0, EQ, 1), arg(0, EQ, 2)],
            )],
        ))
        .unwrap();
        let persona = |p| call(&filter, "personality", [p, 0, 0, 0, 0, 0]);
        assert_eq!(persona(1), Verdict::Errno(libc::EPERM as u32));
        assert_eq!(persona(2), Verdict::Errno(libc::EPERM as u32));
        assert_eq!(persona(3), Verdict::Allow);
        assert_eq!(call(&filter, "getpid", [0; 6]), Verdict::Allow);
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn docker_default_profile_behaves_like_docker() {
        let filter = SeccompFilter::compile(&docker_default_profile(&docker_caps())).unwrap();
        assert!(filter.instruction_count() <= BPF_MAXINSNS);
        assert_eq!(filter.flags(), 0);
        let eperm = Verdict::Errno(libc::EPERM as u32);
        let no_args = [0; 6];

        for allowed in [
            "read",
            "write",
            "execve",
            "openat",
            "exit_group",
            "ptrace",
            "chroot",
        ] {
            assert_eq!(call(&filter, allowed, no_args), Verdict::Allow, "{allowed}");
        }
        for denied in [
            "unshare",
            "mount",
            "umount2",
            "setns",
            "keyctl",
            "add_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "reboot",
            "swapon",
            "io_uring_setup",
        ] {
            assert_eq!(call(&filter, denied, no_args), eperm, "{denied}");
        }

        // clone: threads and forks yes, namespaces no; clone3 must fail with ENOSYS so libc
        // falls back to clone.
        let thread_flags = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD) as u64;
        let clone = |flags| call(&filter, "clone", [flags, 0, 0, 0, 0, 0]);
        assert_eq!(clone(thread_flags), Verdict::Allow);
        assert_eq!(clone(libc::SIGCHLD as u64), Verdict::Allow);
        assert_eq!(clone(libc::CLONE_NEWUSER as u64), eperm);
        assert_eq!(
            clone(libc::SIGCHLD as u64 | libc::CLONE_NEWNS as u64),
            eperm
        );
        assert_eq!(
            call(&filter, "clone3", no_args),
            Verdict::Errno(libc::ENOSYS as u32)
        );

        let persona = |p| call(&filter, "personality", [p, 0, 0, 0, 0, 0]);
        assert_eq!(persona(0), Verdict::Allow);
        assert_eq!(persona(0xffff_ffff), Verdict::Allow);
        assert_eq!(persona(0x0040_0000), eperm, "READ_IMPLIES_EXEC");

        let socket = |domain: i32| call(&filter, "socket", [domain as u64, 1, 0, 0, 0, 0]);
        for ok in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
        ] {
            assert_eq!(socket(ok), Verdict::Allow, "domain {ok}");
        }
        // AF_UNSPEC (0) passes the `< 12` rule, as in moby: the kernel refuses it anyway.
        for blocked in [
            40, /* AF_VSOCK */
            38, /* AF_ALG */
            12, /* AF_DECnet */
            46,
        ] {
            assert_eq!(socket(blocked), eperm, "domain {blocked}");
        }

        // An ABI that is not in the filter is killed, not let through.
        let arm_on_x86 = call_nr(&filter, 0x4000_0028, 0, no_args);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(arm_on_x86, Verdict::KillThread);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(arm_on_x86, Verdict::Allow, "arm is a sub-architecture here");
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn docker_default_profile_covers_the_32_bit_abi() {
        let filter = SeccompFilter::compile(&docker_default_profile(&docker_caps())).unwrap();
        let i386 = |name| {
            let nr = ScmpSyscall::from_name_by_arch(name, ScmpArch::X86)
                .unwrap()
                .as_raw_syscall();
            call_nr(&filter, Arch::ScmpArchX86 as u32, nr, [0; 6])
        };
        assert_eq!(i386("socketcall"), Verdict::Allow);
        assert_eq!(i386("_llseek"), Verdict::Allow);
        assert_eq!(i386("unshare"), Verdict::Errno(libc::EPERM as u32));
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn cap_sys_admin_opens_mount_unshare_and_namespaced_clone() {
        let mut caps = docker_caps();
        caps.push(Capability::SysAdmin);
        let filter = SeccompFilter::compile(&docker_default_profile(&caps)).unwrap();
        for allowed in ["mount", "umount2", "unshare", "setns", "clone3"] {
            assert_eq!(call(&filter, allowed, [0; 6]), Verdict::Allow, "{allowed}");
        }
        let new_user = [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0];
        assert_eq!(call(&filter, "clone", new_user), Verdict::Allow);
        // Not in the SYS_ADMIN list: still refused.
        assert_eq!(
            call(&filter, "keyctl", [0; 6]),
            Verdict::Errno(libc::EPERM as u32)
        );
    }

    // ─── the default profile as data ────────────────────────────────────────────────────

    #[test]
    fn docker_default_profile_with_every_capability_compiles() {
        let mut caps: Vec<_> = CAPABILITY_ALLOWED.iter().map(|(cap, _)| *cap).collect();
        caps.extend(docker_caps());
        SeccompFilter::compile(&docker_default_profile(&caps)).unwrap();
    }

    #[test]
    fn docker_default_profile_lists_what_docker_lists() {
        let profile = docker_default_profile(&docker_caps());
        assert_eq!(profile.default_action(), ERRNO);
        assert_eq!(profile.default_errno_ret(), Some(libc::EPERM as u32));
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            profile.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );

        let allowed = unconditionally_allowed(&profile);
        for name in [
            "read",
            "write",
            "execve",
            "exit_group",
            "futex",
            "chroot",
            "ptrace",
        ] {
            assert!(
                allowed.iter().any(|a| a == name),
                "{name} should be allowed"
            );
        }
        for name in [
            "unshare",
            "mount",
            "umount2",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "open_by_handle_at",
            "init_module",
            "clone",
            "clone3",
            "socket",
            "personality",
            "io_uring_setup",
        ] {
            assert!(
                !allowed.iter().any(|a| a == name),
                "{name} must not be allowed outright"
            );
        }

        let clone3 = profile
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names() == &["clone3"])
            .expect("a clone3 rule");
        assert_eq!(
            (clone3.action(), clone3.errno_ret()),
            (ERRNO, Some(libc::ENOSYS as u32))
        );
    }

    #[test]
    fn capabilities_add_their_syscalls() {
        let with = |cap| unconditionally_allowed(&docker_default_profile(&[cap]));
        assert!(with(Capability::SysAdmin).contains(&"unshare".to_string()));
        assert!(with(Capability::SysModule).contains(&"init_module".to_string()));
        assert!(with(Capability::SysTime).contains(&"clock_settime".to_string()));
        assert!(with(Capability::Bpf).contains(&"bpf".to_string()));
        assert!(!with(Capability::Bpf).contains(&"perf_event_open".to_string()));
        // No clone/clone3 restrictions once the container may create namespaces.
        let admin = docker_default_profile(&[Capability::SysAdmin]);
        let restricted = admin.syscalls().iter().flatten().any(|s| {
            s.names().iter().any(|n| n == "clone" || n == "clone3") && s.action() != ALLOW
                || s.names() == &["clone"] && s.args().is_some()
        });
        assert!(!restricted);
    }

    #[test]
    fn socket_rules_collapse_the_leading_run_only() {
        let shape = |domains: &[u64]| {
            socket_rules(domains)
                .iter()
                .map(|s| {
                    let a = s.args().as_ref().unwrap()[0];
                    (a.op(), a.value())
                })
                .collect::<Vec<_>>()
        };
        use LinuxSeccompOperator::{ScmpCmpEq as Eq, ScmpCmpLt as Lt};
        assert_eq!(shape(&[1, 2, 3, 5, 6]), [(Lt, 4), (Eq, 5), (Eq, 6)]);
        assert_eq!(shape(&[1]), [(Eq, 1)]);
        assert_eq!(shape(&[2, 3]), [(Eq, 2), (Eq, 3)]);
        let docker = shape(SOCKET_DOMAINS_ALLOWED);
        assert_eq!(docker[0], (Lt, 12), "AF_UNIX..=AF_ROSE");
        assert!(!docker.contains(&(Eq, 40)), "AF_VSOCK stays blocked");
    }
}
