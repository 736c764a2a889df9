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
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
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
    #[allow(unsafe_code)]
    pub fn load(&self) -> Result<(), SeccompError> {
        // `compile` guarantees len <= BPF_MAXINSNS, which fits the kernel's u16 length.
        let Ok(len) = libc::c_ushort::try_from(self.program.len()) else {
            return Err(SeccompError::TooLarge {
                instructions: self.program.len(),
            });
        };
        let prog = libc::sock_fprog {
            len,
            // The kernel only reads through this pointer (it copies the program).
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) reads `prog` and the `len`
        // instructions it points to, both alive for the whole call (borrowed from `self`); the
        // kernel copies the program and keeps no pointer into our memory.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        match rc {
            0 => Ok(()),
            // With TSYNC the kernel returns the id of a thread it could not synchronise.
            tid if tid > 0 => Err(SeccompError::Load {
                flags: self.flags,
                source: std::io::Error::other(format!("thread {tid} could not be synchronised")),
            }),
            _ => Err(SeccompError::Load {
                flags: self.flags,
                source: std::io::Error::last_os_error(),
            }),
        }
    }
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

/// Docker's default seccomp profile (moby `profiles/seccomp/default.json`) for this host's
/// architecture, as OCI data, given the capabilities the container gets (some rules depend on
/// them, as in Docker).
pub fn docker_default_profile(capabilities: &[Capability]) -> LinuxSeccomp {
    let _ = capabilities;
    todo!()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn arg(index: usize, op: LinuxSeccompOperator, value: u64) -> LinuxSeccompArg {
        oci_spec::runtime::LinuxSeccompArgBuilder::default()
            .index(index)
            .op(op)
            .value(value)
            .build()
            .unwrap()
    }

    fn masked_arg(index: usize, mask: u64, value: u64) -> LinuxSeccompArg {
        oci_spec::runtime::LinuxSeccompArgBuilder::default()
            .index(index)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .value(mask)
            .value_two(value)
            .build()
            .unwrap()
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
}
