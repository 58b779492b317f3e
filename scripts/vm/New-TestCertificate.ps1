<#
.SYNOPSIS
  Creates (or reuses) a self-signed code-signing certificate and trusts it on this machine.
.DESCRIPTION
  The certificate lives in LocalMachine\My with a non-exportable key. Its public part is imported
  into LocalMachine\Root (so the chain is trusted) and LocalMachine\TrustedPublisher (so driver
  installation does not prompt). The thumbprint goes to driver-sample\driver\build\vm\thumbprint.txt
  for Sign-Driver.ps1. For test machines only.
  UNVERIFIED: not run yet.
#>
[CmdletBinding()]
param(
    [string] $Subject = '',
    [int] $ValidYears = 2
)
. (Join-Path $PSScriptRoot '_Common.ps1')
Assert-Administrator
if (-not $Subject) { $Subject = $script:CertSubject }
$state = New-StateDirectory

$cert = Get-ChildItem Cert:\LocalMachine\My |
    Where-Object { $_.Subject -eq $Subject -and $_.HasPrivateKey -and $_.NotAfter -gt (Get-Date).AddDays(7) } |
    Sort-Object NotAfter -Descending |
    Select-Object -First 1

if (-not $cert) {
    $cert = New-SelfSignedCertificate -Type CodeSigningCert -Subject $Subject `
        -CertStoreLocation Cert:\LocalMachine\My -KeyAlgorithm RSA -KeyLength 3072 `
        -HashAlgorithm SHA256 -KeyExportPolicy NonExportable -NotAfter (Get-Date).AddYears($ValidYears)
    Write-Host "Created test certificate $($cert.Thumbprint)"
} else {
    Write-Host "Reusing test certificate $($cert.Thumbprint)"
}

$cer = Join-Path $state 'fltsample-test.cer'
Export-Certificate -Cert $cert -FilePath $cer -Force | Out-Null
Import-Certificate -FilePath $cer -CertStoreLocation Cert:\LocalMachine\Root | Out-Null
Import-Certificate -FilePath $cer -CertStoreLocation Cert:\LocalMachine\TrustedPublisher | Out-Null

Set-Content -Path (Join-Path $state 'thumbprint.txt') -Value $cert.Thumbprint -Encoding ASCII
Write-Output $cert.Thumbprint
