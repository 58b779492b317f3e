<#
.SYNOPSIS
  Collects what is needed to understand a failed run: fltmc filters/instances, the service
  configuration, Filter Manager and driver-related events, code-integrity events (signature
  problems), the test log. Writes them into -LogDirectory.
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $LogDirectory,
    [int] $Hours = 6
)
. (Join-Path $PSScriptRoot '_Common.ps1')
if (-not (Test-Path $LogDirectory)) { New-Item -ItemType Directory -Path $LogDirectory | Out-Null }

function Save-Output {
    param([string] $Name, [scriptblock] $Block)
    $file = Join-Path $LogDirectory $Name
    try {
        & $Block *>&1 | Out-File -FilePath $file -Encoding utf8 -Width 400
    } catch {
        "failed: $($_.Exception.Message)" | Out-File -FilePath $file -Encoding utf8
    }
}

$since = (Get-Date).AddHours(-$Hours)
Save-Output 'fltmc-filters.txt' { fltmc.exe filters }
Save-Output 'fltmc-instances.txt' { fltmc.exe instances }
Save-Output 'service.txt' { sc.exe qc $script:ServiceName; sc.exe query $script:ServiceName }
Save-Output 'registry.txt' { reg.exe query "HKLM\SYSTEM\CurrentControlSet\Services\$($script:ServiceName)" /s }
Save-Output 'bcdedit.txt' { bcdedit.exe /enum '{current}' }
Save-Output 'events-system.txt' {
    Get-WinEvent -FilterHashtable @{ LogName = 'System'; StartTime = $since } -ErrorAction SilentlyContinue |
        Where-Object { $_.ProviderName -match 'FilterManager|Service Control Manager|Kernel-PnP' -or $_.Message -match $script:ServiceName } |
        Format-List TimeCreated, ProviderName, Id, LevelDisplayName, Message
}
Save-Output 'events-codeintegrity.txt' {
    Get-WinEvent -FilterHashtable @{ LogName = 'Microsoft-Windows-CodeIntegrity/Operational'; StartTime = $since } -ErrorAction SilentlyContinue |
        Format-List TimeCreated, Id, LevelDisplayName, Message
}
Save-Output 'setupapi-dev.txt' { Get-Content (Join-Path $env:windir 'INF\setupapi.dev.log') -Tail 400 }

$testLog = Join-Path $script:StateDir 'npm-test.log'
if (Test-Path $testLog) { Copy-Item $testLog $LogDirectory }
Write-Host "Logs in $LogDirectory"
